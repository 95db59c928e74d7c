"""Deciding a session's next positions within the deadline: reconstruct (for strategies
that look), ask the strategy, and when the decision is late answer with the Halton
continuation (a fallback) while the decision finishes in the background.

Reconstructions (``settings.reconstruction``): ``warm`` continues each session's estimate
(``physics.incremental``) on the one reconstruction thread of ``batching.Batcher``, which
steps the sessions that decide together in one batched call; ``scratch`` is the previous
release's path (each decision reconstructs everything acquired from zero, in its own thread)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import torch

from ..device import configure_threads
from ..physics.incremental import WarmStartSettings
from ..physics.reconstruct import reconstruct_sets
from ..scanning.baselines import halton_unit
from ..scanning.state import ScanState, StatefulStrategy, needs_reconstruction, needs_dark_field
from .batching import Batcher
from .prometheus_metrics import ServiceMetrics
from .schemas import Timings
from .session import Decision, Session
from .settings import ServiceSettings
from .store import optics_of


class Decider:
    """Decisions of every session, on a pool of ``compute_workers`` threads."""

    def __init__(self, settings: ServiceSettings, device: torch.device, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.device = device
        self.metrics = metrics
        self.compute = ThreadPoolExecutor(settings.compute_workers, thread_name_prefix="decide",
                                          initializer=configure_threads, initargs=(settings.torch_threads,))
        self.warm = WarmStartSettings(settings.rop_iterations, settings.warm_local_iterations,
                                      settings.warm_global_iterations)
        self.batcher = Batcher(settings.batch_window_ms / 1e3, settings.torch_threads,
                               metrics.batched_sessions.observe)

    def close(self) -> None:
        self.compute.shutdown(wait=True)
        self.batcher.close()

    def answer(self, session: Session, seq: int, timings: Timings, started: float
               ) -> tuple[np.ndarray, bool, Timings]:
        """The next positions (n, 2) Å of a session whose batch ``seq`` was stored (none when its
        budget is spent), whether they are the Halton fallback of a late decision, and the
        timings with the decision's. ``started``: when the batch arrived (the deadline runs from it)."""
        fallback = False
        if session.remaining == 0:
            positions = np.empty((0, 2))
        else:
            count = min(session.spec.subsequence, session.remaining)
            future = self.compute.submit(self._decide, session, seq, count)
            deadline_s = self.settings.decision_deadline_ms / 1e3
            try:
                decision = future.result(timeout=max(deadline_s - (time.perf_counter() - started), 0.0)
                                         if deadline_s > 0 else None)
                positions = decision.positions_angstrom
                timings = timings.model_copy(update={"reconstruct_ms": decision.reconstruct_ms,
                                                     "decide_ms": decision.decide_ms})
            except FutureTimeout:   # the decision finishes in the background; the next batch waits for it
                session.pending = future
                positions = session.angstrom(halton_unit(count, session.halton_seed, skip=session.acquired))
                fallback = True
                self.metrics.fallbacks.inc()
        timings = timings.model_copy(update={"total_ms": 1e3 * (time.perf_counter() - started)})
        self.metrics.step_seconds.observe(timings.total_ms / 1e3)
        return positions, fallback, timings

    def reconstruct(self, session: Session) -> np.ndarray:
        """The session's reconstruction (H, W) complex of everything acquired: the last step's
        when nothing was acquired since, else from scratch (cached). Patterns without any
        counts (a blanked beam) carry no information: their reconstruction is zero."""
        with session.lock:
            positions, count = list(session.positions), session.acquired
            cached = session.cached_reconstruction()
            blank = session.counts_total == 0
            correction = session.detector_correction() if cached is None and not blank else None
        if cached is not None:
            return cached
        frames = session.recorded_frames()
        g = session.geometry
        if blank:
            potential = np.zeros(g.grid.shape_px, dtype=np.complex64)
        else:
            potential = reconstruct_sets([np.concatenate(frames)], [np.concatenate(positions)],
                                         [optics_of(session.spec)], g.grid, g.sampling, self.settings.rop_iterations,
                                         self.device, [correction])[0].cpu().numpy()
        session.keep_reconstruction(count, potential)
        return potential

    def _decide(self, session: Session, seq: int, count: int) -> Decision:
        """Reconstruct (only for a strategy that looks at it) and ask the strategy."""
        t0 = time.perf_counter()
        strategy = session.strategy
        potential = self._step_reconstruction(session, seq) if needs_reconstruction(strategy) else None
        t1 = time.perf_counter()
        with session.lock:
            acquired = session.unit(np.concatenate(session.positions))
            dark_field = session.dark_field() if needs_dark_field(strategy) else None
        state = ScanState(acquired, potential, len(session.positions), session.geometry.region, dark_field,
                          session.geometry.field.extent_angstrom)
        unit = strategy.next_positions(state, count)
        t2 = time.perf_counter()
        self.metrics.observe("reconstruct", t1 - t0)
        self.metrics.observe("decide", t2 - t1)
        policy_state = strategy.policy_state() if isinstance(strategy, StatefulStrategy) else None
        if policy_state is not None:
            session.folder.save_policy_state(seq, policy_state)
        return Decision(session.angstrom(unit), 1e3 * (t1 - t0), 1e3 * (t2 - t1))

    def _step_reconstruction(self, session: Session, seq: int) -> np.ndarray:
        """The reconstruction a looking strategy decides step ``seq`` on (see the module docstring);
        the warm estimate is kept for the routes and saved for a resume."""
        if self.settings.reconstruction == "scratch":
            return self.reconstruct(session)
        ticket = self.batcher.ticket()
        try:
            state = session.warm_reconstruction(self.device, self.warm)
            potential = self.batcher.reconstruct(ticket, state)
        finally:
            ticket.cancel()
        session.keep_reconstruction(state.done, potential)
        session.folder.save_estimate(seq, potential)
        return potential
