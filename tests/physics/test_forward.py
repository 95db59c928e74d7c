"""The forward model against a plain numpy implementation written from eq. (1)."""

import numpy as np
import pytest
import torch

from scan_server.contracts import ObjectGrid, ProbeOptics, RasterScan, SamplingGeometry
from scan_server.errors import GeometryError, ParameterError
from scan_server.physics.forward import WindowPlan, bin_far_field, forward_patterns, poisson_counts
from scan_server.physics.probe import probe_real


def numpy_patterns(potential: np.ndarray, probe: np.ndarray, grid: ObjectGrid, geometry: SamplingGeometry,
                   positions: np.ndarray) -> np.ndarray:
    """Loop over positions: crop the window, shift the probe by its fraction with an
    explicit DFT phase ramp, |FFT|², bin with explicit trapezoid weights, crop."""
    n, u, m = geometry.window_px, geometry.upsample, geometry.detector_px
    transmission = np.exp(1j * potential)
    freq = np.fft.fftfreq(n)
    out = []
    for position in positions:
        centre = (position - np.asarray(grid.origin_angstrom)) / grid.pixel_size_angstrom
        corner = centre - n // 2
        top = np.floor(corner).astype(int)
        frac = corner - top
        ramp = np.exp(-2j * np.pi * (freq[:, None] * frac[0] + freq[None, :] * frac[1]))
        shifted = np.fft.ifft2(np.fft.fft2(probe) * ramp)
        window = transmission[top[0]:top[0] + n, top[1]:top[1] + n]
        far = np.fft.fftshift(np.fft.fft2(shifted * window)) / n
        intensity = np.abs(far) ** 2
        if u > 1:
            # detector pixel j covers model frequencies [u j − u/2, u j + u/2] around the centre
            weights = np.zeros((n // u, n))
            for j in range(n // u):
                for offset in range(-(u // 2), u // 2 + 1):
                    w = 0.5 if (u % 2 == 0 and abs(offset) == u // 2) else 1.0
                    weights[j, (u * j + offset) % n] += w
            intensity = weights @ intensity @ weights.T
        start = intensity.shape[0] // 2 - m // 2
        out.append(intensity[start:start + m, start:start + m])
    return np.asarray(out)


@pytest.mark.parametrize("upsample, oversample", [(1, 1), (2, 1), (1, 2), (3, 1)])
def test_forward_model_matches_numpy_reference(upsample, oversample, random_object):
    geometry = SamplingGeometry(16, 0.04759 * 2, upsample=upsample, oversample=oversample)
    scan = RasterScan((3, 4), 0.37)
    positions = scan.positions_angstrom() + np.array([0.013, 0.029])
    grid = ObjectGrid.covering(positions, geometry)
    potential = torch.as_tensor(np.resize(random_object[0].numpy(), grid.shape_px))[None]
    probe = probe_real(ProbeOptics(60e3, 33.0, c10_angstrom=-10.0), geometry)
    plan = WindowPlan.for_positions(grid, geometry, positions)
    ours = forward_patterns(torch.exp(1j * potential), probe, plan, geometry).numpy()
    reference = numpy_patterns(potential[0].numpy(), probe.numpy(), grid, geometry, positions)
    assert ours.shape == (len(positions), 16, 16)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_pure_phase_object_conserves_intensity(random_object, small_grid, small_geometry, small_scan):
    phase_only = torch.exp(1j * random_object.real)
    probe = probe_real(ProbeOptics(60e3, 33.0), small_geometry)
    plan = WindowPlan.for_positions(small_grid, small_geometry, small_scan.positions_angstrom())
    patterns = forward_patterns(phase_only, probe, plan, small_geometry)
    assert torch.allclose(patterns.sum(dim=(-2, -1)), torch.ones(plan.count, dtype=torch.float64), atol=1e-10)


def test_vacuum_gives_the_bright_field_disc(small_geometry):
    grid = ObjectGrid((64, 64), small_geometry.pixel_size_angstrom, (0.0, 0.0))
    probe = probe_real(ProbeOptics(60e3, 33.0, c10_angstrom=30.0), small_geometry)
    plan = WindowPlan.for_positions(grid, small_geometry, np.array([[21.0, 21.0]]))
    pattern = forward_patterns(torch.ones((1, 64, 64), dtype=torch.complex128), probe, plan, small_geometry)[0]
    # defocus changes the phase, not the far-field intensity: a uniform disc
    disc = pattern > 1e-12 * pattern.max()
    assert torch.allclose(pattern[disc], pattern[disc].mean().expand(int(disc.sum())), atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_binning_conserves_intensity_and_centres_zero_frequency(factor):
    size = 8 * factor
    intensity = torch.zeros(size, size, dtype=torch.float64)
    intensity[size // 2, size // 2] = 1.0
    binned = bin_far_field(intensity, factor)
    assert binned.shape == (8, 8)
    assert float(binned.sum()) == pytest.approx(1.0)
    assert float(binned[4, 4]) == pytest.approx(1.0)  # a beam on the axis lands in the central pixel
    noise = torch.rand(size, size, dtype=torch.float64)
    assert float(bin_far_field(noise, factor).sum()) == pytest.approx(float(noise.sum()))


def test_window_outside_the_object_is_a_geometry_error(small_geometry):
    grid = ObjectGrid((20, 20), small_geometry.pixel_size_angstrom, (0.0, 0.0))
    with pytest.raises(GeometryError, match="does not fit"):
        WindowPlan.for_positions(grid, small_geometry, np.array([[5.0, 5.0]]))


def test_poisson_counts_have_the_dose_and_refuse_negative_dose():
    intensity = torch.full((2000, 4, 4), 1 / 16, dtype=torch.float64)
    counts = poisson_counts(intensity, 1600.0, torch.Generator().manual_seed(0))
    assert float(counts.sum(dim=(-2, -1)).mean()) == pytest.approx(1600.0, rel=0.01)
    assert float(counts.var()) == pytest.approx(100.0, rel=0.05)  # Poisson: variance = mean
    with pytest.raises(ParameterError, match="positive"):
        poisson_counts(intensity, -5.0)


def test_accumulated_windows_equal_numpy_and_repeat_bit_for_bit():
    """Many repeated indices (overlapping probe windows): the sum equals numpy's unbuffered
    ``np.add.at`` (float64 reference) and two runs give identical bits (threads or not)."""
    from scan_server.physics.forward import accumulate_windows

    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, 40 * 40, (60, 16, 16), generator=generator)
    values = torch.rand((60, 16, 16), generator=generator)
    runs = [accumulate_windows(torch.zeros(40, 40), index, values) for _ in range(3)]
    reference = np.zeros(40 * 40)
    np.add.at(reference, index.numpy().ravel(), values.numpy().astype(np.float64).ravel())
    np.testing.assert_allclose(runs[0].numpy().ravel(), reference, rtol=1e-5)
    assert all(torch.equal(runs[0], r) for r in runs[1:])
