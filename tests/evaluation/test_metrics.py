import numpy as np
import pytest

from scan_server.contracts import GroundTruth, ObjectGrid
from scan_server.errors import ParameterError
from scan_server.evaluation.metrics import (relative_improvement, resample_to_grid, resolution_angstrom,
                                            ssim_phase)


def _lattice(spacings_angstrom, amplitudes, pixel=0.2, size=128, noise=0.0, seed=0):
    y, x = np.mgrid[:size, :size] * pixel
    image = np.zeros((size, size))
    for d, a in zip(spacings_angstrom, amplitudes):
        for angle in (0.0, np.pi / 3, 2 * np.pi / 3):  # hexagonal set of reflections
            image += a * np.cos(2 * np.pi / d * (x * np.cos(angle) + y * np.sin(angle)))
    return image + noise * np.random.default_rng(seed).normal(size=image.shape)


def test_resolution_is_the_finest_reflection_above_the_noise():
    region = _lattice([2.7, 1.0], [1.0, 0.3], noise=0.2)
    assert resolution_angstrom(region, 0.2) == pytest.approx(1.0, rel=0.05)


def test_a_reflection_buried_in_noise_does_not_count():
    buried = _lattice([2.7, 1.0], [1.0, 0.002], noise=0.5)
    assert resolution_angstrom(buried, 0.2) == pytest.approx(2.7, rel=0.05)


def test_pure_noise_has_no_resolution():
    assert resolution_angstrom(np.random.default_rng(1).normal(size=(128, 128)), 0.2) is None


def test_ssim_is_one_for_identical_images_and_ignores_a_constant_offset():
    image = _lattice([2.7], [1.0], size=64)
    region = (slice(4, 60), slice(4, 60))
    assert ssim_phase(image, image, region) == pytest.approx(1.0)
    assert ssim_phase(image + 3.0, image, region) == pytest.approx(1.0)
    noisy = image + np.random.default_rng(0).normal(scale=0.5, size=image.shape)
    assert ssim_phase(noisy, image, region) < 0.9
    with pytest.raises(ParameterError, match="constant"):
        ssim_phase(image, np.zeros_like(image), region)


def test_relative_improvement():
    assert relative_improvement(1.2575, 1.0) == pytest.approx(0.2575)
    with pytest.raises(ParameterError):
        relative_improvement(1.0, 0.0)


def test_resampling_the_truth_to_the_same_grid_is_exact_and_to_a_coarser_one_band_limited():
    grid = ObjectGrid((64, 64), 0.164, (-2.0, -3.0))
    # periodic in the box and well below the coarse grid's Nyquist frequency
    y, x = np.mgrid[:64, :64] / 64
    truth = GroundTruth(np.cos(2 * np.pi * 5 * x) + 0.5 * np.sin(2 * np.pi * (3 * y + 2 * x)), grid)
    same = resample_to_grid(truth, grid)
    np.testing.assert_allclose(same[5:-5, 5:-5], truth.phase_rad[5:-5, 5:-5], atol=1e-6)
    coarse = ObjectGrid((32, 32), 0.328, (-2.0, -3.0))
    shifted = resample_to_grid(truth, coarse)
    np.testing.assert_allclose(shifted[3:-3, 3:-3], truth.phase_rad[::2, ::2][3:-3, 3:-3], atol=1e-3)
