import numpy as np
import pytest
import torch

from scan_server.contracts import ObjectGrid, ProbeOptics, SamplingGeometry
from scan_server.io.resample import resample_acquisition, resample_patterns
from scan_server.physics.forward import WindowPlan, forward_patterns
from scan_server.physics.probe import probe_real


def test_binning_matches_the_forward_model_at_the_coarser_sampling(random_object):
    """A 64-px pattern at Δk binned 2 × 2 is what a 32-px detector of 2Δk records:
    the forward model with upsample 2 computes exactly that (same window, same far field)."""
    fine = SamplingGeometry(64, 0.04759)
    coarse = SamplingGeometry(32, 2 * 0.04759, upsample=2)
    assert fine.window_px == coarse.window_px and fine.pixel_size_angstrom == pytest.approx(coarse.pixel_size_angstrom)
    grid = ObjectGrid((100, 100), fine.pixel_size_angstrom, (-14.0, -14.0))
    potential = torch.as_tensor(np.resize(random_object[0].numpy(), (100, 100)))[None]
    positions = np.array([[0.0, 0.0], [1.13, 2.71]])
    probe = probe_real(ProbeOptics(60e3, 33.0, c10_angstrom=-10.0), fine)
    patterns = forward_patterns(torch.exp(1j * potential), probe, WindowPlan.for_positions(grid, fine, positions), fine)
    expected = forward_patterns(torch.exp(1j * potential), probe, WindowPlan.for_positions(grid, coarse, positions),
                                coarse)
    binned = resample_patterns(patterns.numpy(), 0.04759, 32, 2 * 0.04759)
    np.testing.assert_allclose(binned, expected.numpy(), rtol=1e-5, atol=1e-9)


def _disc(size, sampling, radius):
    k = (np.arange(size) - size // 2) * sampling
    return (np.hypot(k[:, None], k[None, :]) <= radius).astype(np.float64)[None] * 10.0


@pytest.mark.parametrize("size_in, sampling_in, size_out, sampling_out", [
    (96, 0.03, 64, 0.04759), (256, 0.012, 64, 0.04759), (48, 0.06, 64, 0.04759)])
def test_interpolation_conserves_counts_and_keeps_the_disc_radius(size_in, sampling_in, size_out, sampling_out):
    radius = 0.68  # the bright-field disc at 33 mrad, 60 kV, in Å⁻¹
    pattern = _disc(size_in, sampling_in, radius)
    out = resample_patterns(pattern, sampling_in, size_out, sampling_out)
    assert out.sum() == pytest.approx(pattern.sum(), rel=0.03)
    lit_area = (out[0] > 0.5 * out.max()).sum() * sampling_out**2
    assert lit_area == pytest.approx(np.pi * radius**2, rel=0.06)


def test_resampled_acquisition_is_lazy_and_consistent(sample_acquisition):
    seen = resample_acquisition(sample_acquisition, 8, 0.12)
    assert seen.frames.shape == (42, 8, 8) and seen.detector_px == 8
    np.testing.assert_allclose(seen.frames[[3]], resample_patterns(sample_acquisition.frames[[3]], 0.06, 8, 0.12))
    assert resample_acquisition(sample_acquisition, 16, 0.06) is sample_acquisition
