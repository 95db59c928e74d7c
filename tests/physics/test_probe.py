import math

import numpy as np
import pytest
import torch

from scan_server.contracts import ProbeOptics, SamplingGeometry
from scan_server.errors import ParameterError
from scan_server.physics.probe import (aberration_phase_rad, frequency_grid_inv_angstrom, probe_fourier,
                                       probe_real, shifted_probes)
from scan_server.units import electron_wavelength_angstrom


@pytest.mark.parametrize("c10, c30", [(0.0, 0.0), (-20.0, 0.0), (15.0, 1e5)])
def test_probe_is_normalised(c10, c30):
    geometry = SamplingGeometry(64, 0.04759)
    probe = probe_real(ProbeOptics(60e3, 33.0, c10, c30), geometry)
    assert float((probe.abs() ** 2).sum()) == pytest.approx(1.0, abs=1e-10)
    far = torch.fft.fft2(probe, norm="ortho")
    assert float((far.abs() ** 2).sum()) == pytest.approx(1.0, abs=1e-10)


def test_aperture_edge_is_at_the_semi_angle():
    optics = ProbeOptics(60e3, 33.0, c10_angstrom=-5.0)
    window_px, dx = 64, 1 / (64 * 0.04759)
    amplitude = probe_fourier(optics, window_px, dx).abs()
    k_y, k_x = frequency_grid_inv_angstrom(window_px, dx)
    angle_mrad = electron_wavelength_angstrom(60e3) * torch.sqrt(k_y**2 + k_x**2) * 1e3
    inside = angle_mrad <= 33.0
    assert torch.all(amplitude[~inside] == 0)
    # uniform illumination of the aperture: every inside pixel has the same amplitude
    assert torch.allclose(amplitude[inside], amplitude[inside][0].expand(int(inside.sum())))
    # the pixels next to the edge on either side
    assert bool(inside[(angle_mrad > 31.5) & (angle_mrad < 33.0)].all())
    assert not bool(inside[(angle_mrad > 33.0) & (angle_mrad < 34.5)].any())
    aperture_radius_px = 33e-3 / electron_wavelength_angstrom(60e3) / 0.04759
    assert int(inside.sum()) == pytest.approx(math.pi * aperture_radius_px**2, rel=0.05)


def test_defocus_phase_is_quadratic():
    optics = ProbeOptics(60e3, 33.0, c10_angstrom=12.0)
    k_y, k_x = frequency_grid_inv_angstrom(16, 0.3)
    chi = aberration_phase_rad(k_y, k_x, optics)
    wavelength = electron_wavelength_angstrom(60e3)
    expected = math.pi * wavelength * 12.0 * (k_y**2 + k_x**2)
    assert torch.allclose(chi, expected, atol=1e-12)


def test_two_fold_astigmatism_depends_on_azimuth():
    optics = ProbeOptics(60e3, 33.0, aberrations={"C12": 10.0, "phi12": 0.0})
    k = torch.tensor([[0.5]], dtype=torch.float64)
    zero = torch.zeros_like(k)
    along_x = aberration_phase_rad(zero, k, optics)
    along_y = aberration_phase_rad(k, zero, optics)
    assert float(along_x) == pytest.approx(-float(along_y))


def test_unknown_aberration_name_is_refused():
    with pytest.raises(ParameterError):
        ProbeOptics(60e3, 33.0, aberrations={"defocus": 1.0})


def test_focused_probe_is_centred():
    probe = probe_real(ProbeOptics(60e3, 33.0), SamplingGeometry(64, 0.04759))
    intensity = (probe.abs() ** 2).numpy()
    assert np.unravel_index(intensity.argmax(), intensity.shape) == (32, 32)


def test_fourier_subpixel_shift_by_whole_pixels_equals_roll():
    probe = probe_real(ProbeOptics(60e3, 33.0, c10_angstrom=-10.0), SamplingGeometry(32, 0.04759))
    shifts = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 5.0]], dtype=torch.float64)
    shifted = shifted_probes(probe, shifts)
    for i, (dy, dx) in enumerate(shifts.long().tolist()):
        assert torch.allclose(shifted[i], torch.roll(probe, shifts=(dy, dx), dims=(0, 1)), atol=1e-12)


def test_fractional_shifts_compose():
    probe = probe_real(ProbeOptics(60e3, 33.0, c10_angstrom=-10.0), SamplingGeometry(32, 0.04759))
    half = shifted_probes(probe, torch.tensor([[0.5, 0.25]], dtype=torch.float64))[0]
    twice = shifted_probes(half, torch.tensor([[0.5, 0.75]], dtype=torch.float64))[0]
    assert torch.allclose(twice, torch.roll(probe, shifts=(1, 1), dims=(0, 1)), atol=1e-12)
