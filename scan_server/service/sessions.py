"""Scan sessions: state, the step (persist → reconstruct → encode → decide), expiry, resume.

One ``Session`` per microscope scan. The data plane hands it at most one batch at a
time (``zmq_server`` answers ``busy`` otherwise), so a session never races itself; its
lock only guards against the HTTP routes reading while a step writes.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..contracts import ObjectGrid, SamplingGeometry
from ..errors import ScanServerError
from ..physics.reconstruct import RopSettings, prepare_batch, reconstruct
from ..policy.model import AdaptiveModel
from ..policy.model_folder import ModelCard
from ..policy.strategy import AdaptiveScan
from ..scanning.baselines import halton_unit
from ..scanning.field_of_view import FieldOfView
from ..scanning.registry import StrategyContext, build_strategy
from ..scanning.state import ScanState, ScanStrategy
from .decode import decode_frames, decode_positions
from .errors import ErrorCode, ServiceError
from .prometheus_metrics import ServiceMetrics
from .schemas import (
    AcquisitionSpec,
    BatchHeader,
    PositionsReply,
    SessionStatus,
    Timings,
)
from .settings import ServiceSettings
from .store import SessionFolder, SessionIndex, SessionRecord, StoredBatch, optics_of

log = logging.getLogger("scan_server.service")

#: Reported positions may land this fraction of the field of view outside it (scan coils).
POSITION_TOLERANCE = 0.1


@dataclass(frozen=True)
class LoadedModel:
    """The model the server serves (or why there is none)."""

    model: AdaptiveModel | None
    name: str | None
    card: ModelCard | None
    error: str | None


@dataclass(frozen=True)
class Decision:
    """The next positions (n, 2) Å and what the decision took (ms)."""

    positions_angstrom: np.ndarray
    reconstruct_ms: float
    decide_ms: float


@dataclass(frozen=True)
class Geometry:
    """A session's reconstruction geometry: detector sampling, object grid (the field of view
    and a margin for landings outside it), the field of view and its pixels."""

    sampling: SamplingGeometry
    grid: ObjectGrid
    field: FieldOfView
    region: tuple[slice, slice]

    @classmethod
    def of(cls, spec: AcquisitionSpec, max_object_px: int) -> Geometry:
        try:
            sampling = SamplingGeometry(spec.detector_px, spec.detector_sampling_inv_angstrom)
            field = FieldOfView.from_origin(spec.field_of_view_angstrom)
            margin = POSITION_TOLERANCE * np.asarray(field.extent_angstrom)
            grid = ObjectGrid.covering(field.corners_angstrom + np.stack([-margin, margin]), sampling)
        except ScanServerError as exc:
            raise ServiceError(ErrorCode.unsupported_spec, str(exc)) from exc
        if max(grid.shape_px) > max_object_px:
            raise ServiceError(ErrorCode.unsupported_spec, f"the reconstruction grid would be {list(grid.shape_px)} px "
                               f"(field of view / pixel {sampling.pixel_size_angstrom:.3f} Å); the server's limit is "
                               f"{max_object_px} px a side (max_object_px)")
        return cls(sampling, grid, field, field.region(grid))


class Session:
    """One scan: what was acquired, what was asked for, the replies, the strategy's state."""

    def __init__(self, record: SessionRecord, folder: SessionFolder, strategy: ScanStrategy, geometry: Geometry,
                 halton_seed: int) -> None:
        self.record = record
        self.spec = record.spec
        self.folder = folder
        self.strategy = strategy
        self.geometry = geometry
        self.halton_seed = halton_seed
        self.frames: list[np.ndarray] = []
        self.positions: list[np.ndarray] = []
        self.planned = record.first_positions_angstrom
        self.replies: dict[int, PositionsReply] = {}
        self.status = "open"
        self.fallbacks = 0
        self.last_timings: Timings | None = None
        self.updated_at = record.created_at
        self.pending: Future | None = None
        self.lock = threading.RLock()
        self._reconstruction: tuple[int, np.ndarray] | None = None

    @property
    def id(self) -> str:
        return self.record.session_id

    @property
    def acquired(self) -> int:
        return sum(len(p) for p in self.positions)

    @property
    def next_seq(self) -> int:
        return len(self.positions)

    def unit(self, positions_angstrom: np.ndarray) -> np.ndarray:
        return self.geometry.field.to_unit(positions_angstrom)

    def angstrom(self, positions_unit: np.ndarray) -> np.ndarray:
        return self.geometry.field.to_angstrom(positions_unit)

    def status_model(self) -> SessionStatus:
        with self.lock:
            return SessionStatus(
                session_id=self.id, status=self.status, strategy=self.spec.strategy, spec=self.spec,
                step=len(self.positions), positions_acquired=self.acquired,
                positions_planned=self.spec.total_positions, next_seq=self.next_seq, fallbacks=self.fallbacks,
                last_timings=self.last_timings, model=self.record.model,
                recording=str(self.folder.recording_path), created_at=self.record.created_at,
                updated_at=self.updated_at)


class SessionManager:
    """Opens, steps, finishes, expires and resumes sessions."""

    def __init__(self, settings: ServiceSettings, loaded: LoadedModel, device: torch.device,
                 metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.loaded = loaded
        self.device = device
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        self.index = SessionIndex(settings.data_dir / "sessions.sqlite")
        self.compute = ThreadPoolExecutor(settings.compute_workers, thread_name_prefix="decide")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._expire_loop, name="expire", daemon=True)

    # ---- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        self.resume_all()
        self._reaper.start()

    def close(self) -> None:
        """Shutdown: stop expiring, wait for decisions, close files (sessions resume on restart)."""
        self._stop.set()
        self.compute.shutdown(wait=True)
        with self._lock:
            for session in self.sessions.values():
                session.folder.close()
        self.index.close()

    @property
    def open_count(self) -> int:
        with self._lock:
            return sum(s.status == "open" for s in self.sessions.values())

    # ---- strategies -----------------------------------------------------------------
    def _strategy(self, spec: AcquisitionSpec) -> tuple[ScanStrategy, int]:
        if spec.strategy == "adaptive":
            if self.loaded.model is None:
                raise ServiceError(ErrorCode.model_unavailable,
                                   f"no model is loaded ({self.loaded.error}); open a halton, random or raster "
                                   "session, or install a model in models/")
            n = self.loaded.model.settings.policy.subsequence
            if spec.subsequence != n:
                raise ServiceError(ErrorCode.unsupported_spec, f"the model {self.loaded.name} proposes {n} positions "
                                   f"per step; set subsequence to {n}")
            strategy = AdaptiveScan(self.loaded.model)
            return strategy, strategy.seed
        return build_strategy(spec.strategy, StrategyContext(spec.total_positions, spec.seed)), spec.seed

    def _warnings(self, spec: AcquisitionSpec) -> list[str]:
        if spec.strategy != "adaptive" or self.loaded.card is None or self.loaded.card.training_geometry is None:
            return []
        trained = self.loaded.card.training_geometry.as_dict()
        notes = []
        for key in ("detector_px", "detector_sampling_inv_angstrom", "energy_ev", "semiangle_mrad",
                    "field_of_view_angstrom"):
            value = trained.get(key)
            if value is not None and not np.allclose(value, getattr(spec, key), rtol=0.02):
                notes.append(f"{key} {getattr(spec, key)} differs from the model's training data ({value}); "
                             "its decisions may be poor")
        return notes

    # ---- opening ----------------------------------------------------------------------
    def open(self, spec: AcquisitionSpec) -> tuple[Session, list[str]]:
        if spec.total_positions > self.settings.max_positions:
            raise ServiceError(ErrorCode.unsupported_spec, f"total_positions {spec.total_positions} exceeds the "
                               f"server's limit {self.settings.max_positions} (max_positions)")
        if self.open_count >= self.settings.max_sessions:
            raise ServiceError(ErrorCode.too_many_sessions, f"{self.settings.max_sessions} sessions are open; "
                               "finish one (DELETE /sessions/ID) or wait for idle ones to expire")
        geometry = Geometry.of(spec, self.settings.max_object_px)
        strategy, halton_seed = self._strategy(spec)
        first_count = min(spec.subsequence, spec.total_positions)
        first_unit = strategy.next_positions(ScanState(np.empty((0, 2)), None, 0, geometry.region),
                                             spec.subsequence if spec.strategy == "adaptive" else first_count)
        session_id = secrets.token_hex(8)
        record = SessionRecord(session_id=session_id, spec=spec, created_at=time.time(),
                               model=self.loaded.name if spec.strategy == "adaptive" else None,
                               first_positions_angstrom=geometry.field.to_angstrom(first_unit[:first_count]))
        folder = SessionFolder(self.settings.data_dir / session_id)
        try:
            folder.create(record)
            self.index.add(session_id, spec, folder.folder, record.model, record.created_at)
        except OSError as exc:
            raise ServiceError(ErrorCode.storage_failed, f"cannot create the session's files: {exc}") from exc
        session = Session(record, folder, strategy, geometry, halton_seed)
        with self._lock:
            self.sessions[session_id] = session
        self.metrics.sessions_opened.labels(spec.strategy).inc()
        log.info("session %s opened (%s, %d positions)", session_id, spec.strategy, spec.total_positions)
        return session, self._warnings(spec)

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self.sessions.get(session_id)
        if session is None:
            raise ServiceError(ErrorCode.unknown_session, f"no session {session_id!r} on this server")
        return session

    # ---- one step ---------------------------------------------------------------------
    def submit(self, header: BatchHeader, parts: list[bytes]) -> PositionsReply:
        """Validate, persist and answer one batch. Errors leave the session unchanged."""
        started = time.perf_counter()
        session = self.get(header.session_id)
        with session.lock:
            if header.seq in session.replies:
                self.metrics.retries.inc()
                return session.replies[header.seq]
            if session.status != "open":
                raise ServiceError(ErrorCode.session_finished, f"session {session.id} is {session.status}")
            if header.seq != session.next_seq:
                raise ServiceError(ErrorCode.out_of_order, f"expected seq {session.next_seq}, got {header.seq}")
        if session.pending is not None:     # a late decision of the previous step is still running
            session.pending.result()
            session.pending = None
        t0 = time.perf_counter()
        frames = decode_frames(header, parts, session.spec.detector_px)
        positions = decode_positions(header, session.spec.field_of_view_angstrom, POSITION_TOLERANCE)
        if len(positions) != len(session.planned):
            raise ServiceError(ErrorCode.wrong_count, f"the last reply asked for {len(session.planned)} positions; "
                               f"this batch has {len(positions)}")
        t1 = time.perf_counter()
        batch = StoredBatch(header.seq, frames, positions, session.planned)
        try:
            session.folder.append_batch(batch)
        except OSError as exc:
            raise ServiceError(ErrorCode.storage_failed, f"the batch could not be stored ({exc}); "
                               "state unchanged, retry") from exc
        t2 = time.perf_counter()
        with session.lock:
            session.frames.append(frames)
            session.positions.append(positions)
            session.updated_at = time.time()
        self.metrics.observe("decode", t1 - t0)
        self.metrics.observe("persist", t2 - t1)
        return self._answer(session, header.seq, Timings(decode_ms=1e3 * (t1 - t0), persist_ms=1e3 * (t2 - t1)),
                            started)

    def _answer(self, session: Session, seq: int, timings: Timings, started: float) -> PositionsReply:
        """Decide (within the deadline, else Halton points), store the reply, then return it."""
        remaining = session.spec.total_positions - session.acquired
        fallback = False
        if remaining <= 0:
            positions = np.empty((0, 2))
        else:
            count = min(session.spec.subsequence, remaining)
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
        reply = PositionsReply(session_id=session.id, seq=seq, positions_angstrom=positions.tolist(),
                               done=remaining <= 0, fallback=fallback, timings=timings)
        session.folder.save_reply(reply, timings.total_ms)
        with session.lock:
            session.replies[seq] = reply
            session.planned = positions
            session.fallbacks += fallback
            session.last_timings = timings
        if reply.done:
            self.finish(session.id, "finished")
        return reply

    def _reconstruct(self, session: Session) -> np.ndarray:
        with session.lock:
            frames, positions, count = list(session.frames), list(session.positions), session.acquired
        cached = session._reconstruction
        if cached is not None and cached[0] == count:
            return cached[1]
        g = session.geometry
        data = prepare_batch([np.concatenate(frames)], [np.concatenate(positions)], [optics_of(session.spec)],
                             g.grid, g.sampling, self.device)
        potential = reconstruct(data, RopSettings(iterations=self.settings.rop_iterations))[0].cpu().numpy()
        session._reconstruction = (count, potential)
        return potential

    def _decide(self, session: Session, seq: int, count: int) -> Decision:
        """Reconstruct (adaptive only: the baselines do not look) and ask the strategy."""
        t0 = time.perf_counter()
        adaptive = isinstance(session.strategy, AdaptiveScan)
        potential = self._reconstruct(session) if adaptive else None
        t1 = time.perf_counter()
        acquired = session.unit(np.concatenate(session.positions))
        state = ScanState(acquired, potential, len(session.positions), session.geometry.region)
        unit = session.strategy.next_positions(state, session.spec.subsequence if adaptive else count)[:count]
        t2 = time.perf_counter()
        self.metrics.observe("reconstruct", t1 - t0)
        self.metrics.observe("decide", t2 - t1)
        if adaptive and session.strategy.hidden is not None:
            session.folder.save_policy_state(seq, session.strategy.hidden.cpu().numpy())
        return Decision(session.angstrom(unit), 1e3 * (t1 - t0), 1e3 * (t2 - t1))

    def reconstruction(self, session_id: str) -> np.ndarray:
        """The current reconstruction (H, W) complex (computed now for the baselines)."""
        session = self.get(session_id)
        if not session.positions:
            raise ServiceError(ErrorCode.bad_request, "no batch has been acquired yet")
        return self._reconstruct(session)

    # ---- the end of a session -------------------------------------------------------------
    def finish(self, session_id: str, status: str = "finished") -> Session:
        session = self.get(session_id)
        if session.pending is not None:
            session.pending.result()
            session.pending = None
        with session.lock:
            if session.status == "open":
                session.folder.finish()
                session.status = status
                self.index.set_status(session.id, status)
                self.metrics.sessions_closed.labels(status).inc()
                log.info("session %s %s (%d positions)", session.id, status, session.acquired)
        return session

    def _expire_loop(self) -> None:
        while not self._stop.wait(min(5.0, self.settings.idle_timeout_s / 4)):
            now = time.time()
            with self._lock:
                idle = [s.id for s in self.sessions.values()
                        if s.status == "open" and now - s.updated_at > self.settings.idle_timeout_s]
            for session_id in idle:
                try:
                    self.finish(session_id, "expired")
                except Exception:  # a failing folder must not stop the reaper
                    log.exception("could not expire session %s", session_id)

    # ---- restart ------------------------------------------------------------------------
    def resume_all(self) -> None:
        for session_id, path in self.index.open_sessions():
            try:
                self._resume(session_id, path)
            except Exception:
                log.exception("session %s could not be resumed; left on disk in %s", session_id, path)

    def _resume(self, session_id: str, path: Path) -> None:
        folder = SessionFolder(path)
        record = folder.load_record()
        batches = folder.load_batches()
        replies = folder.load_replies()
        strategy, halton_seed = self._strategy(record.spec)
        session = Session(record, folder, strategy, Geometry.of(record.spec, self.settings.max_object_px), halton_seed)
        folder.reopen(record.spec, batches)
        for batch in batches:
            session.frames.append(batch.frames)
            session.positions.append(batch.positions_angstrom)
        session.replies = replies
        session.updated_at = time.time()
        last = len(batches) - 1
        if isinstance(strategy, AdaptiveScan):
            answered = last if last in replies else last - 1   # the state after the last answered step
            hidden = folder.load_policy_state(up_to=answered)
            strategy.hidden = None if hidden is None else torch.as_tensor(hidden, device=self.device)
        with self._lock:
            self.sessions[session_id] = session
        if last >= 0 and last not in replies:     # crashed between persisting a batch and replying
            self._answer(session, last, Timings(), time.perf_counter())
        elif last >= 0:
            session.planned = np.asarray(replies[last].positions_angstrom).reshape(-1, 2)
            if replies[last].done:
                self.finish(session_id, "finished")
        log.info("session %s resumed at seq %d (%d positions on disk)", session_id, session.next_seq,
                 session.acquired)
