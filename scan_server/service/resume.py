"""Resuming the sessions that were open when the server stopped: each session's batches,
replies and policy state are read back from its folder; a batch persisted but not yet
answered (a crash between the two) is answered now."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..policy.strategy import AdaptiveScan
from .schemas import Timings
from .session import Geometry, Session
from .store import SessionFolder

if TYPE_CHECKING:
    from .sessions import SessionManager

log = logging.getLogger("scan_server.service")


def resume_all(manager: SessionManager) -> None:
    """Every session the index lists as open; one that cannot be read is left on disk."""
    for session_id, path in manager.index.open_sessions():
        try:
            resume(manager, session_id, path)
        except Exception:
            log.exception("session %s could not be resumed; left on disk in %s", session_id, path)


def resume(manager: SessionManager, session_id: str, path: Path) -> None:
    folder = SessionFolder(path)
    record = folder.load_record()
    batches = folder.load_batches()
    replies = folder.load_replies()
    strategy, halton_seed = manager.strategy_for(record.spec)
    geometry = Geometry.of(record.spec, manager.settings.max_object_px)
    session = Session(record, folder, strategy, geometry, halton_seed)
    folder.reopen(record.spec, batches)
    for batch in batches:
        session.frames.append(batch.frames)
        session.positions.append(batch.positions_angstrom)
    session.replies = replies
    session.updated_at = time.time()
    last = len(batches) - 1
    if isinstance(strategy, AdaptiveScan):
        answered = last if last in replies else last - 1   # the state after the last answered step
        strategy.restore_policy_state(folder.load_policy_state(up_to=answered))
    manager.add(session)
    if last >= 0 and last not in replies:     # crashed between persisting a batch and replying
        manager.answer(session, last, Timings(), time.perf_counter())
    elif last >= 0:
        session.planned = np.asarray(replies[last].positions_angstrom).reshape(-1, 2)
        if replies[last].done:
            manager.finish(session_id, "finished")
    log.info("session %s resumed at seq %d (%d positions on disk)", session_id, session.next_seq, session.acquired)
