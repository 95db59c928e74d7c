"""The session manager: opening (admission, limits, the strategy from the registry,
compatibility warnings), one step (validate → persist → decide → reply), finishing and
expiry. A session's state lives in ``session.py``, deciding in ``decider.py``, resuming
after a restart in ``resume.py``."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..policy.strategy import learned_strategy
from ..scanning.registry import ADAPTIVE, BASELINE_STRATEGIES, STRATEGIES, StrategyContext, build_strategy
from ..scanning.state import ScanState, ScanStrategy
from .decider import Decider
from .decode import batch_digest, decode_frames, decode_positions
from .errors import ErrorCode, ServiceError
from .kill_points import reached
from .prometheus_metrics import ServiceMetrics
from .resume import restore, restore_closed
from .schemas import (
    AcquisitionSpec,
    BatchHeader,
    PositionsReply,
    Status,
    Timings,
)
from .session import POSITION_TOLERANCE, Geometry, LoadedModel, Session, credential_hash
from .settings import ServiceSettings
from .store import SessionFolder, SessionIndex, SessionRecord, StoredBatch

log = logging.getLogger("scan_server.service")


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
        self.decider = Decider(settings, device, metrics)
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
        self.decider.close()
        with self._lock:
            for session in self.sessions.values():
                session.folder.close()
        self.index.close()

    @property
    def open_count(self) -> int:
        with self._lock:
            return sum(s.status is Status.open for s in self.sessions.values())

    # ---- strategies -----------------------------------------------------------------
    def strategy_for(self, spec: AcquisitionSpec) -> tuple[ScanStrategy, int]:
        """A new strategy for a session (from the registry) and the Halton seed of its fallbacks."""
        model = self.loaded.model
        if STRATEGIES[spec.strategy].needs_model:
            if model is None:
                raise ServiceError(ErrorCode.model_unavailable,
                                   f"no model is loaded ({self.loaded.error}); open one of the baseline sessions "
                                   f"({', '.join(BASELINE_STRATEGIES)}), or install a model in models/")
            if spec.strategy not in model.strategies:
                raise ServiceError(ErrorCode.model_unavailable, f"the model {self.loaded.name} serves "
                                   f"{', '.join(model.strategies)}, not {spec.strategy}")
            n = model.settings.policy.subsequence
            if spec.strategy == ADAPTIVE and spec.subsequence != n:
                raise ServiceError(ErrorCode.unsupported_spec, f"the model {self.loaded.name} proposes {n} positions "
                                   f"per step; set subsequence to {n}")
        context = StrategyContext(spec.total_positions, spec.seed,
                                  learned=None if model is None else partial(learned_strategy, model))
        strategy = build_strategy(spec.strategy, context)
        # the adaptive policy starts with its model's Halton sequence, every other strategy with the
        # session's: the fallbacks continue that one
        return strategy, model.settings.policy.halton_seed if spec.strategy == ADAPTIVE else spec.seed

    def _warnings(self, spec: AcquisitionSpec) -> list[str]:
        card = self.loaded.card
        if not STRATEGIES[spec.strategy].needs_model or card is None or card.training_geometry is None:
            return []
        trained = card.training_geometry.as_dict()
        notes = []
        for key in ("detector_px", "detector_sampling_inv_angstrom", "energy_ev", "semiangle_mrad",
                    "field_of_view_angstrom"):
            value = trained.get(key)
            if value is not None and not np.allclose(value, getattr(spec, key), rtol=0.02):
                notes.append(f"{key} {getattr(spec, key)} differs from the model's training data ({value}); "
                             "its decisions may be poor")
        return notes

    # ---- opening ----------------------------------------------------------------------
    def open(self, spec: AcquisitionSpec) -> tuple[Session, list[str], str]:
        """A new session, the compatibility warnings and its credential (returned once, kept hashed)."""
        if spec.total_positions > self.settings.max_positions:
            raise ServiceError(ErrorCode.unsupported_spec, f"total_positions {spec.total_positions} exceeds the "
                               f"server's limit {self.settings.max_positions} (max_positions)")
        frame_bytes = spec.total_positions * spec.detector_px ** 2 * np.dtype(np.float32).itemsize
        if frame_bytes > self.settings.max_session_bytes:
            raise ServiceError(ErrorCode.unsupported_spec, f"{spec.total_positions} frames of {spec.detector_px}² px "
                               f"would hold {frame_bytes / 2**20:.0f} MiB (float32); the server's limit is "
                               f"{self.settings.max_session_bytes / 2**20:.0f} MiB a session (max_session_bytes)")
        if self.open_count >= self.settings.max_sessions:
            raise ServiceError(ErrorCode.too_many_sessions, f"{self.settings.max_sessions} sessions are open; "
                               "finish one (DELETE /sessions/ID) or wait for idle ones to expire")
        geometry = Geometry.of(spec, self.settings.max_object_px)
        strategy, halton_seed = self.strategy_for(spec)
        first_count = min(spec.subsequence, spec.total_positions)
        first_unit = strategy.next_positions(ScanState(np.empty((0, 2)), None, 0, geometry.region),
                                             spec.subsequence if STRATEGIES[spec.strategy].needs_model else first_count)
        session_id = secrets.token_hex(8)
        credential = secrets.token_urlsafe(24)
        record = SessionRecord(session_id=session_id, spec=spec, created_at=time.time(),
                               model=self.loaded.name if STRATEGIES[spec.strategy].needs_model else None,
                               first_positions_angstrom=geometry.field.to_angstrom(first_unit[:first_count]),
                               token_sha256=credential_hash(credential))
        folder = SessionFolder(self.settings.data_dir / session_id)
        try:
            folder.create(record)
            reached("open.folder")
            self.index.add(session_id, spec, folder.folder, record.model, record.created_at)
        except OSError as exc:
            raise ServiceError(ErrorCode.storage_failed, f"cannot create the session's files: {exc}") from exc
        reached("open.index")
        session = Session(record, folder, strategy, geometry, halton_seed)
        self.add(session)
        self.metrics.sessions_opened.labels(spec.strategy).inc()
        log.info("session %s opened (%s, %d positions)", session_id, spec.strategy, spec.total_positions)
        return session, self._warnings(spec), credential

    def add(self, session: Session) -> None:
        """Hold a session (opened or resumed) under its id."""
        with self._lock:
            self.sessions[session.id] = session

    def listed(self, limit: int = 100) -> list[Session]:
        """The sessions this server holds (open, resumed, and finished since it started), newest first."""
        with self._lock:
            held = list(self.sessions.values())
        return sorted(held, key=lambda s: s.record.created_at, reverse=True)[:limit]

    def authorised(self, session_id: str, credential: str | None) -> Session:
        """The session, for its opener only (``credential``: its session token)."""
        session = self.get(session_id)
        session.check_credential(credential)
        return session

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self.sessions.get(session_id)
        if session is None:
            raise ServiceError(ErrorCode.unknown_session, f"no session {session_id!r} on this server")
        return session

    # ---- one step ---------------------------------------------------------------------
    def submit(self, header: BatchHeader, parts: list[bytes], digest: str | None = None) -> PositionsReply:
        """Validate, persist and answer one batch (``digest``: its ``batch_digest``, computed here
        when not given). Errors leave the session unchanged."""
        started = time.perf_counter()
        session = self.get(header.session_id)
        session.check_credential(header.session_token)
        digest = digest or batch_digest(header, parts)
        with session.step_lock:        # a DELETE or expiry waits for this step to be answered
            return self._step(session, header, parts, digest, started)

    def _step(self, session: Session, header: BatchHeader, parts: list[bytes], digest: str,
              started: float) -> PositionsReply:
        with session.lock:
            if header.seq in session.replies:
                stored = session.digests.get(header.seq)
                if stored is not None and stored != digest:
                    raise ServiceError(ErrorCode.retry_mismatch, f"seq {header.seq} was stored with other content; "
                                       "a retry must repeat the batch exactly (the next batch takes the next seq)")
                self.metrics.retries.inc()
                return session.replies[header.seq]
            if session.status is not Status.open:
                raise ServiceError(ErrorCode.session_finished, f"session {session.id} is {session.status.value}")
            if header.seq != session.next_seq:
                raise ServiceError(ErrorCode.out_of_order, f"expected seq {session.next_seq}, got {header.seq}")
        if session.pending is not None:     # a late decision of the previous step is still running
            session.pending.result()
            session.pending = None
        t0 = time.perf_counter()
        frames = decode_frames(header, parts, session.spec.detector_px, expected_count=len(session.planned))
        positions = decode_positions(header, session.spec.field_of_view_angstrom, POSITION_TOLERANCE)
        t1 = time.perf_counter()
        batch = StoredBatch(header.seq, frames, positions, session.planned)
        try:
            session.folder.append_batch(batch, digest)
        except OSError as exc:
            raise ServiceError(ErrorCode.storage_failed, f"the batch could not be stored ({exc}); "
                               "state unchanged, retry") from exc
        t2 = time.perf_counter()
        with session.lock:
            session.add_batch(frames, positions)
            session.digests[header.seq] = digest
            session.updated_at = time.time()
        self.metrics.observe("decode", t1 - t0)
        self.metrics.observe("persist", t2 - t1)
        return self.answer(session, header.seq, Timings(decode_ms=1e3 * (t1 - t0), persist_ms=1e3 * (t2 - t1)),
                           started)

    def answer(self, session: Session, seq: int, timings: Timings, started: float) -> PositionsReply:
        """Decide (within the deadline, else Halton points), store the reply, then return it."""
        positions, fallback, timings = self.decider.answer(session, seq, timings, started)
        reply = PositionsReply(session_id=session.id, seq=seq, positions_angstrom=positions.tolist(),
                               done=session.remaining == 0, fallback=fallback, timings=timings)
        session.folder.save_reply(reply, timings.total_ms)
        with session.lock:
            session.replies[seq] = reply
            session.planned = positions
            session.fallbacks += fallback
            session.last_timings = timings
            session.touch()
        if reply.done:
            self.finish(session.id, Status.finished)
        return reply

    def reconstruction(self, session_id: str) -> np.ndarray:
        """The current reconstruction (H, W) complex (computed now for the baselines)."""
        session = self.get(session_id)
        if not session.positions:
            raise ServiceError(ErrorCode.bad_request, "no batch has been acquired yet")
        return self.decider.reconstruct(session)

    # ---- the end of a session -------------------------------------------------------------
    def finish(self, session_id: str, status: Status = Status.finished) -> Session:
        session = self.get(session_id)
        with session.step_lock:        # never in the middle of a step: it persists, decides and replies first
            return self._finish(session, status)

    def _finish(self, session: Session, status: Status) -> Session:
        if session.pending is not None:
            session.pending.result()
            session.pending = None
        with session.lock:
            if session.status is Status.open and status is not Status.open:
                # crash-ordered: the index first, then the recording is marked complete, then the batch
                # files go; a kill in between leaves a finished session with its files, never the reverse
                self.index.set_status(session.id, status.value)
                reached("finish.index")
                session.close(status)
                self.metrics.sessions_closed.labels(status.value).inc()
                log.info("session %s %s (%d positions)", session.id, status.value, session.acquired)
        return session

    def _expire_loop(self) -> None:
        while not self._stop.wait(min(5.0, self.settings.idle_timeout_s / 4)):
            now = time.time()
            with self._lock:
                idle = [s.id for s in self.sessions.values()
                        if s.status is Status.open and now - s.updated_at > self.settings.idle_timeout_s]
            for session_id in idle:
                try:
                    self.finish(session_id, Status.expired)
                except Exception:  # a failing folder must not stop the reaper
                    log.exception("could not expire session %s", session_id)

    # ---- restart ------------------------------------------------------------------------
    def resume_all(self) -> None:
        """Every session the index lists as open, and the closed ones of the last
        ``finished_retention_s`` (queryable, their replies replayable); one that cannot be read
        is left on disk."""
        for session_id, status, path in self.index.closed_sessions(time.time() - self.settings.finished_retention_s):
            try:
                self.add(restore_closed(path, Status(status), self.settings.max_object_px))
            except Exception:
                log.exception("finished session %s could not be read back; left on disk in %s", session_id, path)
        for session_id, path in self.index.open_sessions():
            try:
                if SessionFolder(path).recording_complete():   # finished before the index was told (older data)
                    self.index.set_status(session_id, Status.finished.value)
                    self.add(restore_closed(path, Status.finished, self.settings.max_object_px))
                    log.info("session %s was already complete on disk: marked finished, left as it is", session_id)
                    continue
                self._resume(path)
            except Exception:
                log.exception("session %s could not be resumed; left on disk in %s", session_id, path)

    def _resume(self, path: Path) -> None:
        session = restore(path, self.strategy_for, self.settings.max_object_px)
        self.add(session)
        last = session.next_seq - 1
        if last >= 0 and last not in session.replies:     # crashed between persisting a batch and replying
            self.answer(session, last, Timings(), time.perf_counter())
        elif last >= 0 and session.replies[last].done:
            self.finish(session.id, Status.finished)
        log.info("session %s resumed at seq %d (%d positions on disk)", session.id, session.next_seq,
                 session.acquired)
