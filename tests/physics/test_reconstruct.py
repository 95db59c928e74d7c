import numpy as np
import pytest
import torch

from scan_server.contracts import ObjectGrid, ProbeOptics, RasterScan, SamplingGeometry
from scan_server.errors import GeometryError, ParameterError
from scan_server.evaluation.metrics import pearson, resample_to_grid
from scan_server.io.canonical import read_recording
from scan_server.physics.forward import WindowPlan, forward_patterns
from scan_server.physics.probe import probe_real
from scan_server.physics.reconstruct import (RopSettings, loss_and_gradient, prepare_batch, reconstruct,
                                             reconstruct_acquisition, reconstruct_subsets)
from scan_server.physics.simulate import preset, simulate_recording


def _measure(potential: torch.Tensor, optics: ProbeOptics, grid: ObjectGrid, geometry: SamplingGeometry,
             positions: np.ndarray, electrons: float = 1e5) -> np.ndarray:
    plan = WindowPlan.for_positions(grid, geometry, positions)
    probe = probe_real(optics, geometry)
    return (forward_patterns(torch.exp(1j * potential), probe, plan, geometry) * electrons).numpy()


GEOMETRIES = {"detector = window": dict(), "oversampled (detector < window)": dict(oversample=2),
              "upsampled (binned far field)": dict(upsample=2)}


@pytest.mark.parametrize("extra", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_gradient_matches_finite_differences(extra, small_scan, optics):
    """For the written-out gradient (no binning) and the autograd one (binning) alike."""
    geometry = SamplingGeometry(detector_px=16 if extra else 32, detector_sampling_inv_angstrom=0.04759, **extra)
    small_grid = ObjectGrid.covering(small_scan.positions_angstrom(), geometry)
    generator = torch.Generator().manual_seed(3)
    random_object = (0.4 * torch.rand((1, *small_grid.shape_px), generator=generator, dtype=torch.float64)
                     + 0.03j * torch.rand((1, *small_grid.shape_px), generator=generator, dtype=torch.float64))
    positions = small_scan.positions_angstrom()
    frames = _measure(random_object, optics, small_grid, geometry, positions)
    batch = prepare_batch([frames], [positions], [optics], small_grid, geometry)
    # evaluate away from the solution, where the gradient is not small
    generator = torch.Generator().manual_seed(0)
    trial = 0.7 * random_object + 0.1 * torch.rand(random_object.shape, generator=generator, dtype=torch.float64)
    _, gradient = loss_and_gradient(trial, batch)
    centre = (small_grid.shape_px[0] // 2, small_grid.shape_px[1] // 2)
    pixels = [centre, (centre[0] + 2, centre[1] - 3), (centre[0] - 4, centre[1] + 1)]
    eps = 1e-5
    for y, x in pixels:
        for direction, part in ((1.0, "real"), (1j, "imag")):
            plus, minus = trial.clone(), trial.clone()
            plus[0, y, x] += eps * direction
            minus[0, y, x] -= eps * direction
            numeric = float(loss_and_gradient(plus, batch)[0] - loss_and_gradient(minus, batch)[0]) / (2 * eps)
            analytic = float(getattr(gradient[0, y, x], part))
            assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-9), (y, x, part)


@pytest.mark.parametrize("extra", [dict(), dict(oversample=2)], ids=["detector = window", "oversampled"])
def test_written_out_gradient_equals_autograd(extra, small_scan, optics):
    """The no-binning fast path against torch's autograd through the forward model, on the
    same batch (complex128, so the comparison is not limited by float32 rounding)."""
    from scan_server.physics import reconstruct as rop

    geometry = SamplingGeometry(detector_px=16, detector_sampling_inv_angstrom=0.04759, **extra)
    grid = ObjectGrid.covering(small_scan.positions_angstrom(), geometry)
    generator = torch.Generator().manual_seed(5)
    truth = 0.5 * torch.rand((1, *grid.shape_px), generator=generator, dtype=torch.float64).to(torch.complex128)
    positions = small_scan.positions_angstrom()
    batch = prepare_batch([_measure(truth, optics, grid, geometry, positions)], [positions], [optics], grid, geometry)
    trial = 0.6 * truth + 0.05j
    fast_loss, fast = loss_and_gradient(trial, batch, chunk=7)
    reference_loss, reference = torch.zeros(1, dtype=torch.float64), torch.zeros_like(trial)
    cache = rop.ChunkCache(batch, RopSettings(chunk_positions=7))
    transmission = torch.exp(1j * trial).reshape(-1)
    for start in range(0, batch.plan.count, 7):
        plan = batch.plan.chunk(start, start + 7)
        index = rop.window_flat_index(plan, batch.object_shape, geometry.window_px)
        per_pattern, window_gradient = rop._chunk_loss_and_gradient_autograd(
            cache.get(start).to(torch.complex128), transmission[index], batch.patterns[start:start + 7], geometry)
        reference_loss += per_pattern.sum()
        reference.reshape(-1).index_put_((index.reshape(-1),), window_gradient.reshape(-1), accumulate=True)
    reference = torch.conj(1j * transmission.reshape(trial.shape)) * reference
    torch.testing.assert_close(fast_loss, reference_loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(fast, reference, rtol=1e-9, atol=1e-12)


def test_batched_equals_one_by_one(small_geometry):
    """Three data sets with ragged position counts and different defocus: the batched
    reconstruction of each equals its own reconstruction (no padding artefacts)."""
    rng = np.random.default_rng(7)
    scan = RasterScan((7, 7), 0.8)
    grid = ObjectGrid.covering(scan.positions_angstrom(), small_geometry)
    frames, positions, optics = [], [], []
    for b, count in enumerate((49, 20, 33)):
        potential = torch.as_tensor(0.3 * rng.random(grid.shape_px) + 0.01j * rng.random(grid.shape_px))[None]
        chosen = scan.positions_angstrom()[rng.choice(49, count, replace=False)]
        o = ProbeOptics(60e3, 33.0, c10_angstrom=-10.0 + 10 * b)
        frames.append(_measure(potential, o, grid, small_geometry, chosen))
        positions.append(chosen)
        optics.append(o)
    settings = RopSettings(iterations=4, chunk_positions=16)
    together = reconstruct(prepare_batch(frames, positions, optics, grid, small_geometry), settings)
    for b in range(3):
        alone = reconstruct(prepare_batch([frames[b]], [positions[b]], [optics[b]], grid, small_geometry), settings)
        torch.testing.assert_close(together[b], alone[0], rtol=1e-5, atol=1e-6)


def test_reconstruction_is_deterministic(small_geometry, small_scan, small_grid, random_object, optics):
    positions = small_scan.positions_angstrom()
    frames = _measure(random_object, optics, small_grid, small_geometry, positions)
    runs = [reconstruct(prepare_batch([frames], [positions], [optics], small_grid, small_geometry),
                        RopSettings(iterations=3)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_loss_decreases(small_geometry, small_scan, small_grid, random_object, optics):
    positions = small_scan.positions_angstrom()
    frames = _measure(random_object, optics, small_grid, small_geometry, positions)
    batch = prepare_batch([frames], [positions], [optics], small_grid, small_geometry)
    losses = [float(loss_and_gradient(reconstruct(batch, RopSettings(iterations=k)).to(torch.complex128), batch)[0])
              for k in (0, 2, 8)]
    assert losses[0] > losses[1] > losses[2]


def test_bad_inputs_are_clear_errors(small_geometry, small_scan, small_grid, optics):
    positions = small_scan.positions_angstrom()
    frames = np.ones((len(positions), 32, 32))
    with pytest.raises(ParameterError, match="frames but"):
        prepare_batch([frames[:-1]], [positions], [optics], small_grid, small_geometry)
    with pytest.raises(GeometryError, match=r"frames must be \(P, 32, 32\)"):
        prepare_batch([np.ones((len(positions), 16, 16))], [positions], [optics], small_grid, small_geometry)
    tiny = ObjectGrid((16, 16), small_geometry.pixel_size_angstrom, (0.0, 0.0))
    with pytest.raises(GeometryError, match="larger than the object"):
        prepare_batch([frames], [positions], [optics], tiny, small_geometry)
    with pytest.raises(ParameterError, match="step size"):
        RopSettings(step_size=-1.0)


@pytest.mark.slow
def test_noise_free_mos2_reconstruction_correlates_with_the_true_phase(tmp_path):
    """All positions of a noise-free 40 × 40 MoS2 recording (simulated on a 0.164 Å grid
    reaching twice the detector angle, reconstructed on the detector's 0.33 Å grid): the
    phase over the scanned field of view correlates with the true phase, band-limited to
    the reconstruction grid, at r ≥ 0.95. Pearson's r ignores a constant offset, which is
    right: a global phase changes no pattern, so the reconstruction cannot know it."""
    path = simulate_recording(preset("paper", scan_shape=(40, 40), poisson_noise=False), 11, tmp_path / "r.h5",
                              progress=False)
    acquisition = read_recording(path)
    result = reconstruct_acquisition(acquisition, np.arange(acquisition.count), RopSettings(iterations=30))
    region = result.grid.scan_region(acquisition.positions_angstrom)
    truth = resample_to_grid(acquisition.ground_truth, result.grid)
    r = pearson(result.potential.real[region], truth[region])
    assert r >= 0.95, r


def test_subsets_reconstructed_together_equal_each_alone(tmp_path):
    """The dose–quality curves reconstruct a strategy's counts in one batch: each subset's
    result is the one it gets alone (float32 rounding apart), whatever its size."""
    path = simulate_recording(preset("small", scan_shape=(12, 12)), 5, tmp_path / "s.h5", progress=False)
    acquisition = read_recording(path)
    rng = np.random.default_rng(0)
    subsets = [rng.choice(144, size, replace=False) for size in (20, 45, 90)]
    together = reconstruct_subsets(acquisition, subsets, RopSettings(iterations=4))
    for subset, result in zip(subsets, together):
        alone = reconstruct_acquisition(acquisition, subset, RopSettings(iterations=4))
        assert np.allclose(result.potential, alone.potential, atol=1e-5)
        assert np.array_equal(result.positions_angstrom, alone.positions_angstrom)


def test_step_guard_stops_divergence(small_geometry, small_scan, small_grid, random_object, optics):
    """A step far too large for this strong, smooth object: without the guard the loss
    explodes; with it the loss ends below where it started."""
    positions = small_scan.positions_angstrom()
    frames = _measure(random_object, optics, small_grid, small_geometry, positions)
    batch = prepare_batch([frames], [positions], [optics], small_grid, small_geometry)
    start = float(loss_and_gradient(torch.zeros_like(random_object), batch)[0])
    guarded = reconstruct(batch, RopSettings(iterations=8, step_size=5000.0))
    unguarded = reconstruct(batch, RopSettings(iterations=8, step_size=5000.0, divergence_factor=1e30))
    unguarded_loss = float(loss_and_gradient(unguarded.to(torch.complex128), batch)[0])
    assert not unguarded_loss < start  # exploded (possibly to inf/NaN)
    assert float(loss_and_gradient(guarded.to(torch.complex128), batch)[0]) < 0.5 * start


@pytest.mark.gpu
def test_cuda_reconstruction_equals_cpu_and_is_deterministic(small_geometry, small_scan, small_grid,
                                                             random_object, optics):
    positions = small_scan.positions_angstrom()
    frames = _measure(random_object, optics, small_grid, small_geometry, positions)
    settings = RopSettings(iterations=4)
    cpu = reconstruct(prepare_batch([frames], [positions], [optics], small_grid, small_geometry), settings)
    cuda_batch = prepare_batch([frames], [positions], [optics], small_grid, small_geometry, torch.device("cuda"))
    first, second = reconstruct(cuda_batch, settings), reconstruct(cuda_batch, settings)
    assert torch.equal(first, second)
    torch.testing.assert_close(first.cpu(), cpu, rtol=1e-3, atol=1e-4)


def test_reconstruction_works_inside_no_grad(small_geometry, small_scan, small_grid, random_object, optics):
    positions = small_scan.positions_angstrom()
    frames = _measure(random_object, optics, small_grid, small_geometry, positions)
    batch = prepare_batch([frames], [positions], [optics], small_grid, small_geometry)
    with torch.no_grad():
        inside = reconstruct(batch, RopSettings(iterations=2))
    torch.testing.assert_close(inside, reconstruct(batch, RopSettings(iterations=2)))
