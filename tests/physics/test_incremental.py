"""Warm-started incremental ROP: its first step is the from-scratch reconstruction, data
sets stepped together equal each stepped alone, a warm step agrees with the truth at least
as well as a from-scratch one of the same data, and a restored estimate continues."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scan_server.contracts import ObjectGrid, ProbeOptics, RasterScan
from scan_server.errors import GeometryError
from scan_server.evaluation.metrics import pearson
from scan_server.physics.forward import WindowPlan, forward_patterns
from scan_server.physics.incremental import IncrementalReconstruction, WarmStartSettings, advance
from scan_server.physics.probe import probe_real
from scan_server.physics.reconstruct import RopSettings, reconstruct_sets

CPU = torch.device("cpu")


@pytest.fixture
def scan_data(small_geometry, optics):
    """A 9 × 9 raster over a smooth random object, Poisson counts; the raster in random order
    (a scan acquired in sub-sequences); the object grid covers the raster."""
    scan = RasterScan((9, 9), 0.7)
    positions = scan.positions_angstrom()[np.random.default_rng(1).permutation(81)]
    grid = ObjectGrid.covering(scan.positions_angstrom(), small_geometry)
    generator = torch.Generator().manual_seed(2)
    phase = torch.nn.functional.avg_pool2d(torch.rand((1, 1, *grid.shape_px), generator=generator), 3, 1, 1)[0]
    truth = (0.6 * phase).to(torch.complex64)
    plan = WindowPlan.for_positions(grid, small_geometry, positions)
    intensity = forward_patterns(torch.exp(1j * truth), probe_real(optics, small_geometry), plan, small_geometry)
    frames = torch.poisson(intensity.double() * 2e4, generator=generator).float().numpy()
    return frames, positions, grid, truth[0].real.numpy()


def _incremental(grid, geometry, optics, settings=WarmStartSettings()):
    return IncrementalReconstruction(optics, grid, geometry, CPU, settings)


def test_the_first_step_is_the_from_scratch_reconstruction(scan_data, small_geometry, optics):
    frames, positions, grid, _ = scan_data
    session = _incremental(grid, small_geometry, optics)
    session.add(frames[:30], positions[:30])
    warm = advance([session])[0]
    scratch = reconstruct_sets([frames[:30]], [positions[:30]], [optics], grid, small_geometry, 5)[0]
    torch.testing.assert_close(warm, scratch, rtol=1e-5, atol=1e-6)
    assert session.done == 30


def test_sets_stepped_together_equal_each_stepped_alone(scan_data, small_geometry):
    """Three sessions, different optics and sub-sequence sizes, one fresh while two are warm."""
    frames, positions, grid, _ = scan_data
    optics = [ProbeOptics(60e3, 33.0, c10_angstrom=c) for c in (-12.0, -5.0, 3.0)]
    sizes = [(20, 15), (25, 10), (0, 30)]       # the third session starts at the second step
    together = [_incremental(grid, small_geometry, o) for o in optics]
    alone = [_incremental(grid, small_geometry, o) for o in optics]
    for step in range(2):
        for b in range(3):
            start = sum(sizes[b][:step])
            stop = start + sizes[b][step]
            if stop > start:
                for sets in (together, alone):
                    sets[b].add(frames[start:stop], positions[start:stop])
        batched = advance(together)
        for b in range(3):
            torch.testing.assert_close(batched[b], advance([alone[b]])[0], rtol=1e-5, atol=1e-6)


def test_a_set_without_new_patterns_is_left_as_it_was(scan_data, small_geometry, optics):
    frames, positions, grid, _ = scan_data
    idle, busy = _incremental(grid, small_geometry, optics), _incremental(grid, small_geometry, optics)
    for session in (idle, busy):
        session.add(frames[:20], positions[:20])
    advance([idle, busy])
    before = idle.potential.clone()
    busy.add(frames[20:40], positions[20:40])
    advance([idle, busy])
    assert torch.equal(idle.potential, before) and busy.done == 40


def test_a_warm_step_agrees_with_the_truth_as_well_as_a_from_scratch_one(scan_data, small_geometry, optics):
    """Sub-sequences of 20: after each, the warm estimate's phase correlates with the true
    phase over the scanned region at least as well (to 0.01) as the from-scratch 5-iteration
    reconstruction of the same data (it carries the earlier steps' work)."""
    frames, positions, grid, truth = scan_data
    region = grid.scan_region(positions)
    session = _incremental(grid, small_geometry, optics)
    for stop in (20, 40, 60, 80):
        session.add(frames[stop - 20:stop], positions[stop - 20:stop])
        warm = advance([session])[0].real.numpy()[region]
        scratch = reconstruct_sets([frames[:stop]], [positions[:stop]], [optics], grid, small_geometry, 5)[0]
        r_scratch = pearson(scratch.real.numpy()[region], truth[region])
        assert pearson(warm, truth[region]) >= r_scratch - 0.01, stop
    assert r_scratch > 0.95


def test_a_restored_estimate_continues_exactly(scan_data, small_geometry, optics):
    """A resumed session: the estimate stored after step 1, the patterns added again, step 2
    gives what the uninterrupted session gives, bit for bit."""
    frames, positions, grid, _ = scan_data
    first = _incremental(grid, small_geometry, optics)
    first.add(frames[:25], positions[:25])
    stored = advance([first])[0].numpy().copy()
    first.add(frames[25:50], positions[25:50])
    uninterrupted = advance([first])[0]
    resumed = _incremental(grid, small_geometry, optics)
    resumed.add(frames[:25], positions[:25])
    resumed.add(frames[25:50], positions[25:50])
    resumed.restore(stored, 25)
    assert torch.equal(advance([resumed])[0], uninterrupted)


def test_past_the_memory_budget_probes_and_patterns_are_made_per_pass(scan_data, small_geometry, optics):
    frames, positions, grid, _ = scan_data
    kept = _incremental(grid, small_geometry, optics)
    tight = _incremental(grid, small_geometry, optics, WarmStartSettings(rop=RopSettings(cache_bytes=1000)))
    for stop in (30, 60):
        for session in (kept, tight):
            session.add(frames[stop - 30:stop], positions[stop - 30:stop])
        torch.testing.assert_close(advance([tight])[0], advance([kept])[0], rtol=1e-5, atol=1e-6)
    assert tight.kept is None and kept.kept is not None and len(kept.kept.shifted) == 60


def test_a_set_without_counts_keeps_its_estimate_until_counts_arrive(scan_data, small_geometry, optics):
    """A blanked beam: nothing to fit, no error; stepped together with a set that has counts."""
    frames, positions, grid, _ = scan_data
    blank, lit = _incremental(grid, small_geometry, optics), _incremental(grid, small_geometry, optics)
    blank.add(np.zeros_like(frames[:20]), positions[:20])
    lit.add(frames[:20], positions[:20])
    estimates = advance([blank, lit])
    assert not estimates[0].any() and estimates[1].abs().max() > 0 and blank.done == 0
    blank.add(frames[20:40], positions[20:40])
    assert advance([blank])[0].abs().max() > 0 and blank.done == 40


def test_sets_of_different_grids_are_refused(scan_data, small_geometry, optics):
    frames, positions, grid, _ = scan_data
    other = ObjectGrid.covering(RasterScan((12, 12), 0.7).positions_angstrom(), small_geometry)
    a, b = _incremental(grid, small_geometry, optics), _incremental(other, small_geometry, optics)
    with pytest.raises(GeometryError):
        advance([a, b])


@pytest.mark.gpu
def test_cuda_steps_equal_cpu_steps(scan_data, small_geometry, optics):
    """Two sessions stepped together on CUDA, three steps, against the same on the CPU."""
    frames, positions, grid, _ = scan_data
    cuda = [IncrementalReconstruction(optics, grid, small_geometry, torch.device("cuda")) for _ in range(2)]
    cpu = [_incremental(grid, small_geometry, optics) for _ in range(2)]
    for stop in (20, 40, 60):
        for b, sets in ((0, cuda), (1, cuda), (0, cpu), (1, cpu)):
            offset = 10 * b
            sets[b].add(frames[offset + stop - 20:offset + stop], positions[offset + stop - 20:offset + stop])
        for on_cuda, on_cpu in zip(advance(cuda), advance(cpu)):
            torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-3, atol=1e-4)
