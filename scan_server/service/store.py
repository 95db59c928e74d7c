"""Persistence of sessions: a folder per session and a SQLite index of all of them.

Layout of ``data_dir/SESSION_ID/``:
- ``session.json``: the spec, model, first positions (written once, atomically);
- ``batches/SEQ.npz``: each accepted batch (frames float32, reported and planned
  positions), written to a temporary file, fsynced and renamed *before* the reply: the
  durable record, one file per batch, so a crash can never damage an earlier batch;
- ``replies/SEQ.json``: the reply sent for that batch (a retry gets it again);
- ``digests/SEQ.txt``: the SHA-256 of the batch as received (a retry must match it), kept
  after the session finishes;
- ``policy/SEQ.npy``: the adaptive policy's hidden state after that step;
- ``estimate/SEQ.npy``: the warm-started reconstruction after that step (only the latest is
  kept; a resumed session continues from it, ``physics.incremental``);
- ``recording.h5``: the canonical recording (docs/recording-format.md), appended and
  flushed batch by batch with the planned positions and per-step timings under
  ``/session``; marked complete when the session finishes, then readable by
  ``scan_server.io.canonical.read_recording`` (and every command of the project). After
  a crash it is rebuilt from the batch files.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..contracts import ProbeOptics
from ..io.canonical import write_header
from .kill_points import reached
from .schemas import AcquisitionSpec, PositionsReply

SESSION_FILE = "session.json"
RECORDING_FILE = "recording.h5"
#: the recording's attribute with the sum of its frames (written when the session finishes)
COUNTS_TOTAL_ATTR = "counts_total"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@dataclass(frozen=True)
class StoredBatch:
    seq: int
    frames: np.ndarray              # (n, M, M) float32
    positions_angstrom: np.ndarray  # (n, 2) reported
    planned_angstrom: np.ndarray    # (n, 2) what the server had asked for


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    spec: AcquisitionSpec
    model: str | None
    first_positions_angstrom: np.ndarray
    created_at: float
    token_sha256: str | None = None     # the session credential's SHA-256 (None: a session of an older release)


def optics_of(spec: AcquisitionSpec) -> ProbeOptics:
    return ProbeOptics(energy_ev=spec.energy_ev, semiangle_mrad=spec.semiangle_mrad,
                       c10_angstrom=spec.c10_angstrom, c30_angstrom=spec.c30_angstrom)


class SessionFolder:
    """One session's files. Not thread-safe: the session serialises calls."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.recording_path = folder / RECORDING_FILE
        self._h5: h5py.File | None = None

    # ---- creation and loading ---------------------------------------------------
    def create(self, record: SessionRecord) -> None:
        for sub in ("batches", "replies", "policy", "estimate", "digests"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        _atomic_write(self.folder / SESSION_FILE, json.dumps({
            "session_id": record.session_id, "spec": record.spec.model_dump(mode="json"), "model": record.model,
            "first_positions_angstrom": record.first_positions_angstrom.tolist(),
            "created_at": record.created_at, "token_sha256": record.token_sha256}).encode())
        self._open_recording(record.spec, rebuild_from=[])

    def load_record(self) -> SessionRecord:
        data = json.loads((self.folder / SESSION_FILE).read_text())
        return SessionRecord(session_id=data["session_id"], spec=AcquisitionSpec(**data["spec"]),
                             model=data["model"], created_at=data["created_at"],
                             first_positions_angstrom=np.asarray(data["first_positions_angstrom"]).reshape(-1, 2),
                             token_sha256=data.get("token_sha256"))

    def load_batches(self) -> list[StoredBatch]:
        batches = []
        for path in sorted((self.folder / "batches").glob("*.npz")):
            with np.load(path, allow_pickle=False) as data:
                batches.append(StoredBatch(int(path.stem), data["frames"], data["positions_angstrom"],
                                           data["planned_angstrom"]))
        return batches

    def load_replies(self) -> dict[int, PositionsReply]:
        return {int(p.stem): PositionsReply.model_validate_json(p.read_text())
                for p in (self.folder / "replies").glob("*.json")}

    def load_policy_state(self, up_to: int) -> np.ndarray | None:
        """The policy's hidden state after the latest step ≤ ``up_to`` (None: none yet)."""
        states = sorted(p for p in (self.folder / "policy").glob("*.npy") if int(p.stem) <= up_to)
        return np.load(states[-1], allow_pickle=False) if states else None

    def load_estimate(self, up_to: int) -> tuple[int, np.ndarray] | None:
        """The warm-started reconstruction saved after the latest step ≤ ``up_to`` and that step."""
        saved = sorted(p for p in (self.folder / "estimate").glob("*.npy") if int(p.stem) <= up_to)
        return (int(saved[-1].stem), np.load(saved[-1], allow_pickle=False)) if saved else None

    def load_digests(self) -> dict[int, str]:
        folder = self.folder / "digests"
        return {int(p.stem): p.read_text().strip() for p in folder.glob("*.txt")} if folder.is_dir() else {}

    # ---- appending ----------------------------------------------------------------
    def append_batch(self, batch: StoredBatch, digest: str) -> None:
        """Durable first (digest and batch file, fsynced), then the recording (appended, flushed)."""
        (self.folder / "digests").mkdir(exist_ok=True)
        _atomic_write(self.folder / "digests" / f"{batch.seq:06d}.txt", digest.encode())
        reached("batch.digest")
        _atomic_write(self.folder / "batches" / f"{batch.seq:06d}.npz",
                      _npz_bytes(frames=batch.frames, positions_angstrom=batch.positions_angstrom,
                                 planned_angstrom=batch.planned_angstrom))
        reached("batch.file")
        self._append_recording(batch)
        reached("batch.recording")

    def save_reply(self, reply: PositionsReply, total_ms: float) -> None:
        _atomic_write(self.folder / "replies" / f"{reply.seq:06d}.json", reply.model_dump_json().encode())
        if self._h5 is not None:
            steps = self._h5["session/step_total_ms"]
            if reply.seq < steps.shape[0]:
                steps[reply.seq] = total_ms
                self._h5["session/fallback"][reply.seq] = reply.fallback
                self._h5.flush()
        reached("batch.reply")

    def save_policy_state(self, seq: int, hidden: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, hidden, allow_pickle=False)
        _atomic_write(self.folder / "policy" / f"{seq:06d}.npy", buffer.getvalue())

    def save_estimate(self, seq: int, potential: np.ndarray) -> None:
        """The warm-started reconstruction (H, W) complex64 after step ``seq``; earlier ones are removed."""
        folder = self.folder / "estimate"
        folder.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, potential, allow_pickle=False)
        _atomic_write(folder / f"{seq:06d}.npy", buffer.getvalue())
        for path in folder.glob("*.npy"):
            if int(path.stem) < seq:
                path.unlink(missing_ok=True)

    # ---- the canonical recording -----------------------------------------------------
    def _open_recording(self, spec: AcquisitionSpec, rebuild_from: list[StoredBatch]) -> None:
        partial = self.recording_path.with_name(RECORDING_FILE + ".partial")
        m = spec.detector_px
        with h5py.File(partial, "w") as f:
            f.create_dataset("frames", shape=(0, m, m), maxshape=(None, m, m), dtype=np.float32,
                             chunks=(min(spec.subsequence, 64), m, m))
            f.create_dataset("positions_angstrom", shape=(0, 2), maxshape=(None, 2), dtype=np.float64)
            write_header(f, optics_of(spec), m, spec.detector_sampling_inv_angstrom,
                         electrons_per_pattern=spec.electrons_per_pattern,
                         metadata={"session_spec": spec.model_dump(mode="json"), "source": "scan-server session"})
            group = f.create_group("session")
            group.create_dataset("planned_positions_angstrom", shape=(0, 2), maxshape=(None, 2), dtype=np.float64)
            group.create_dataset("step_frames", shape=(0,), maxshape=(None,), dtype=np.int64)
            group.create_dataset("step_total_ms", shape=(0,), maxshape=(None,), dtype=np.float64)
            group.create_dataset("fallback", shape=(0,), maxshape=(None,), dtype=bool)
        os.replace(partial, self.recording_path)
        self._h5 = h5py.File(self.recording_path, "a")
        for batch in rebuild_from:
            self._append_recording(batch)

    def _append_recording(self, batch: StoredBatch) -> None:
        f = self._h5
        assert f is not None
        n = len(batch.frames)

        def grow(name: str, values: np.ndarray) -> None:
            data = f[name]
            start = data.shape[0]
            data.resize(start + len(values), axis=0)
            data[start:] = values

        grow("frames", batch.frames)
        grow("positions_angstrom", batch.positions_angstrom)
        grow("session/planned_positions_angstrom", batch.planned_angstrom)
        grow("session/step_frames", np.asarray([n]))
        grow("session/step_total_ms", np.asarray([np.nan]))
        grow("session/fallback", np.asarray([False]))
        f.flush()

    def reopen(self, spec: AcquisitionSpec, batches: list[StoredBatch]) -> None:
        """After a restart: rewrite the recording from the durable batch files (never a complete one)."""
        if self.recording_complete():
            raise RuntimeError(f"{self.recording_path} is complete; it is never rewritten")
        self._open_recording(spec, rebuild_from=batches)

    def recording_complete(self) -> bool:
        """Whether the recording on disk is marked complete (finished: immutable from then on)."""
        if not self.recording_path.is_file():
            return False
        try:
            with h5py.File(self.recording_path, "r") as f:
                return bool(f.attrs.get("complete", False))
        except OSError:       # torn by a crash mid-append: not complete
            return False

    def load_recorded(self, chunk: int = 256) -> tuple[list[np.ndarray], float]:
        """A finished session's positions per step (from the recording's ``session/step_frames``)
        and the total counts of its frames (read ``chunk`` frames at a time)."""
        with h5py.File(self.recording_path, "r") as f:
            positions = np.asarray(f["positions_angstrom"])
            steps = np.cumsum(np.asarray(f["session/step_frames"]))[:-1]
            frames = f["frames"]
            counts = f.attrs.get(COUNTS_TOTAL_ATTR)
            if counts is None:          # a recording of an older release: read every frame once
                counts = sum(float(np.sum(frames[i:i + chunk], dtype=np.float64))
                             for i in range(0, len(frames), chunk))
        return np.split(positions, steps), float(counts)

    def load_frames(self) -> np.ndarray:
        """All frames (n, M, M) float32 of the recording (a finished session's reconstruction)."""
        with h5py.File(self.recording_path, "r") as f:
            return np.asarray(f["frames"], dtype=np.float32)

    def finish(self, counts_total: float | None = None) -> None:
        """Mark the recording complete and close it; the batch files are then redundant.
        ``counts_total``: the sum of all frames (kept as an attribute, so that reading the
        session back after a restart does not read every frame)."""
        if self._h5 is None:
            return
        if counts_total is not None:
            self._h5.attrs[COUNTS_TOTAL_ATTR] = counts_total
        self._h5.attrs["complete"] = True
        self._h5.flush()
        self._h5.close()
        self._h5 = None
        reached("finish.complete")
        self.remove_redundant()

    def remove_redundant(self) -> None:
        """Remove the batch files and the saved estimate: only once the recording is complete."""
        assert self.recording_complete(), self.recording_path
        for index, path in enumerate(sorted([*(self.folder / "batches").glob("*.npz"),
                                             *(self.folder / "estimate").glob("*.npy")])):
            path.unlink(missing_ok=True)
            if index == 0:
                reached("finish.cleanup")

    def complete_interrupted_finish(self, spec: AcquisitionSpec) -> None:
        """After a crash in the middle of finishing (the index already says closed): complete the
        recording from the durable batch files if it is not complete yet, then remove them."""
        if not self.recording_complete():
            batches = self.load_batches()
            self.reopen(spec, batches)
            self.finish(sum(float(np.sum(b.frames, dtype=np.float64)) for b in batches))
        else:
            self.remove_redundant()

    def close(self) -> None:
        """Close without finishing (server shutdown: the session resumes on restart)."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None


class SessionIndex:
    """SQLite index of sessions: id, status, strategy, spec, folder, model, times. Written
    when a session opens and when its status changes, never per step (the batch files are
    the record of progress)."""

    SCHEMA = """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, strategy TEXT NOT NULL, spec_json TEXT NOT NULL,
        folder TEXT NOT NULL, model TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL)"""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(self.SCHEMA)
        self._lock = threading.Lock()

    def add(self, session_id: str, spec: AcquisitionSpec, folder: Path, model: str | None, created_at: float) -> None:
        with self._lock:
            self._db.execute("INSERT INTO sessions (id, status, strategy, spec_json, folder, model, created_at, "
                             "updated_at) VALUES (?, 'open', ?, ?, ?, ?, ?, ?)",
                             (session_id, spec.strategy, spec.model_dump_json(), str(folder), model, created_at,
                              created_at))

    def set_status(self, session_id: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE sessions SET status = ?, updated_at = ? WHERE id = ?",
                             (status, time.time(), session_id))

    def closed_sessions(self, since: float) -> list[tuple[str, str, Path]]:
        """(id, status, folder) of the sessions finished or expired after ``since`` (Unix s), newest last."""
        with self._lock:
            rows = self._db.execute("SELECT id, status, folder FROM sessions WHERE status != 'open' AND "
                                    "updated_at >= ? ORDER BY updated_at", (since,))
            return [(r[0], r[1], Path(r[2])) for r in rows.fetchall()]

    def open_sessions(self) -> list[tuple[str, Path]]:
        with self._lock:
            rows = self._db.execute("SELECT id, folder FROM sessions WHERE status = 'open' ORDER BY created_at")
            return [(r[0], Path(r[1])) for r in rows.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
