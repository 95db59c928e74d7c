"""Reading back a session that was open when the server stopped: its batches, replies and
policy state, from its folder. The manager then answers a batch that was persisted but not
yet answered (a crash between the two), or finishes a session whose last reply said done.
A strategy that looks at the reconstruction continues from the warm estimate saved after the
last answered step (``session.warm_reconstruction``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..scanning.state import ScanStrategy, StatefulStrategy, needs_reconstruction
from .schemas import AcquisitionSpec, Status
from .session import Geometry, Session
from .store import SessionFolder


def restore(path: Path, strategy_for: Callable[[AcquisitionSpec], tuple[ScanStrategy, int]],
            max_object_px: int) -> Session:
    """The session stored in ``path``, as it was after its last persisted batch."""
    folder = SessionFolder(path)
    record = folder.load_record()
    batches = folder.load_batches()
    replies = folder.load_replies()
    strategy, halton_seed = strategy_for(record.spec)
    session = Session(record, folder, strategy, Geometry.of(record.spec, max_object_px), halton_seed)
    folder.reopen(record.spec, batches)
    for batch in batches:
        session.add_batch(batch.frames, batch.positions_angstrom)
    session.replies = replies
    session.digests = folder.load_digests()
    session.updated_at = time.time()
    last = len(batches) - 1
    answered = last if last in replies else last - 1   # the state after the last answered step
    if isinstance(strategy, StatefulStrategy):
        strategy.restore_policy_state(folder.load_policy_state(up_to=answered))
    if needs_reconstruction(strategy):
        session.resume_estimate = folder.load_estimate(up_to=answered)
    if last in replies:
        session.planned = np.asarray(replies[last].positions_angstrom).reshape(-1, 2)
    return session


def restore_closed(path: Path, status: Status, max_object_px: int) -> Session:
    """A session that was finished or expired before the restart, read back so that it stays
    queryable and its replies replayable (a finish cut short by a crash is completed first):
    record, replies, positions per step and total counts
    from the complete recording; no frames held (``Session.recorded_frames`` reads them), no strategy."""
    folder = SessionFolder(path)
    record = folder.load_record()
    folder.complete_interrupted_finish(record.spec)
    session = Session(record, folder, None, Geometry.of(record.spec, max_object_px), halton_seed=0)
    session.positions, session.counts_total = folder.load_recorded()
    session.positions = [p for p in session.positions if len(p)]
    session.replies = folder.load_replies()
    session.digests = folder.load_digests()
    session.fallbacks = sum(r.fallback for r in session.replies.values())
    last = max(session.replies, default=None)
    session.last_timings = session.replies[last].timings if last is not None else None
    session.planned = np.empty((0, 2))
    session.status = status
    session.updated_at = time.time()
    return session
