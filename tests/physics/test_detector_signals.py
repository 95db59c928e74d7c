import numpy as np
import torch

from scan_server.contracts import Acquisition, ProbeOptics, SamplingGeometry
from scan_server.physics.detector_signals import bright_field_disc, dark_field_fraction, recording_dark_field
from scan_server.physics.probe import probe_fourier
from scan_server.units import mrad_to_inv_angstrom

OPTICS = ProbeOptics(energy_ev=60e3, semiangle_mrad=25.0, c10_angstrom=-50.0)


def test_the_disc_is_the_aperture_in_detector_pixels():
    sampling = 0.05
    disc = bright_field_disc(64, sampling, OPTICS)
    radius_px = mrad_to_inv_angstrom(25.0, 60e3) / sampling
    assert disc[32, 32] and disc[32, 32 + int(radius_px)] and not disc[32, 32 + int(radius_px) + 1]
    assert abs(disc.sum() - np.pi * radius_px**2) < 2 * np.pi * radius_px  # the area, up to the rim's pixels


def test_dark_field_fraction_of_known_patterns():
    disc = bright_field_disc(64, 0.05, OPTICS)
    uniform = np.ones((64, 64))
    only_disc = disc.astype(float) * 7.0
    frames = np.stack([uniform, only_disc, np.zeros((64, 64)), only_disc + 3 * (~disc)])
    expected = [1 - disc.mean(), 0.0, 0.0, 3 * (~disc).sum() / (7 * disc.sum() + 3 * (~disc).sum())]
    np.testing.assert_allclose(dark_field_fraction(frames, disc), expected, rtol=1e-12)


def test_a_vacuum_probe_shows_no_dark_field():
    """In vacuum the pattern is the probe's far field: every count lies within the aperture."""
    geometry = SamplingGeometry(64, 0.05)
    far_field = probe_fourier(OPTICS, 64, geometry.pixel_size_angstrom)
    pattern = torch.fft.fftshift(far_field.abs() ** 2).numpy()
    assert dark_field_fraction(pattern[None], bright_field_disc(64, 0.05, OPTICS))[0] < 1e-12


def test_a_recording_is_read_in_chunks_to_the_same_fractions(rng):
    frames = rng.poisson(3.0, size=(10, 16, 16)).astype(np.float32)
    acquisition = Acquisition(frames, rng.random((10, 2)), OPTICS, 16, 0.2)
    disc = bright_field_disc(16, 0.2, OPTICS)
    np.testing.assert_allclose(recording_dark_field(acquisition, chunk=3), dark_field_fraction(frames, disc))
