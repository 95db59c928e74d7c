"""The reconstruction thread: decisions due together are stepped in one call, each result is
the session's own (as stepped alone), a lone request does not wait for the window, and one
session's failure fails only that session."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from scan_server.contracts import ObjectGrid, ProbeOptics, RasterScan, SamplingGeometry
from scan_server.physics.forward import WindowPlan, forward_patterns
from scan_server.physics.incremental import IncrementalReconstruction, advance
from scan_server.physics.probe import probe_real
from scan_server.service.batching import Batcher

GEOMETRY = SamplingGeometry(detector_px=32, detector_sampling_inv_angstrom=0.04759)
SCAN = RasterScan((8, 8), 0.8)
GRID = ObjectGrid.covering(SCAN.positions_angstrom(), GEOMETRY)


def _sessions(count: int, patterns: int = 20, blank: int | None = None) -> tuple[list, list]:
    """``count`` pairs of identical sessions (one for the batcher, one to step alone), each with
    its own defocus and positions; session ``blank`` has all-zero patterns."""
    rng = np.random.default_rng(4)
    phase = torch.as_tensor(0.4 * rng.random(GRID.shape_px))[None].to(torch.complex64)
    batched, alone = [], []
    for b in range(count):
        optics = ProbeOptics(60e3, 33.0, c10_angstrom=-10.0 + 5 * b)
        positions = SCAN.positions_angstrom()[rng.choice(64, patterns, replace=False)]
        plan = WindowPlan.for_positions(GRID, GEOMETRY, positions)
        frames = (forward_patterns(torch.exp(1j * phase), probe_real(optics, GEOMETRY), plan, GEOMETRY) * 1e4).numpy()
        if b == blank:
            frames = np.zeros_like(frames)
        for group in (batched, alone):
            group.append(IncrementalReconstruction(optics, GRID, GEOMETRY, torch.device("cpu")))
            group[-1].add(frames, positions)
    return batched, alone


def _ask_together(batcher: Batcher, states: list) -> list:
    """Every decision takes its ticket first, then all ask from their own threads."""
    tickets = [batcher.ticket() for _ in states]
    results: list = [None] * len(states)

    def ask(i: int) -> None:
        try:
            results[i] = batcher.reconstruct(tickets[i], states[i])
        except Exception as exc:       # the caller checks which failed
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(states))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_decisions_due_together_are_one_call_and_each_gets_its_own_result():
    batcher = Batcher(window_s=30.0)      # long: the call must start when the last ticket asks, not then
    try:
        batched, alone = _sessions(3)
        results = _ask_together(batcher, batched)
        assert batcher.batch_sizes == [3]
        for result, session in zip(results, alone):
            np.testing.assert_allclose(result, advance([session])[0].numpy(), rtol=1e-5, atol=1e-6)
    finally:
        batcher.close()


def test_a_lone_request_does_not_wait_for_the_window():
    batcher = Batcher(window_s=3600.0)    # a wait would outlast the test's timeout
    try:
        batched, alone = _sessions(1)
        result = batcher.reconstruct(batcher.ticket(), batched[0])
        np.testing.assert_allclose(result, advance(alone)[0].numpy(), rtol=1e-5, atol=1e-6)
        assert batcher.batch_sizes == [1]
    finally:
        batcher.close()


def test_a_cancelled_ticket_releases_the_others():
    """A decision that fails before asking cancels its ticket; the one that asks is not held
    for the window."""
    batcher = Batcher(window_s=3600.0)
    try:
        batched, _ = _sessions(1)
        waiting, failed = batcher.ticket(), batcher.ticket()
        done = threading.Event()
        threading.Thread(target=lambda: (batcher.reconstruct(waiting, batched[0]), done.set())).start()
        failed.cancel()
        assert done.wait(timeout=60)
    finally:
        batcher.close()


def test_one_sessions_failure_fails_only_that_session():
    """A session whose windows point outside its grid (a corrupted state) fails alone; the two
    stepped with it get their own results. A blanked beam (no counts) is no failure: zero."""
    batcher = Batcher(window_s=30.0)
    try:
        batched, alone = _sessions(4, blank=3)
        batched[1]._corner_px.buffer[:] = 10**6
        results = _ask_together(batcher, batched)
        assert isinstance(results[1], (IndexError, RuntimeError))
        for b in (0, 2):
            np.testing.assert_allclose(results[b], advance([alone[b]])[0].numpy(), rtol=1e-5, atol=1e-6)
        assert not results[3].any()
    finally:
        batcher.close()


def test_no_reconstruction_after_close():
    batcher = Batcher(window_s=0.0)
    batcher.close()
    batched, _ = _sessions(1)
    with pytest.raises(RuntimeError, match="shutting down"):
        batcher.reconstruct(batcher.ticket(), batched[0])
