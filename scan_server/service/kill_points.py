"""Kill points: the named steps where the service persists something, at which a test (or
``make soak``) has the process killed — SIGKILL, no shutdown code runs — to show that a crash
at any of them loses nothing acknowledged and leaves every reply replayable.

Arm one with the environment variable ``SCAN_SERVER_KILL_AT=POINT`` (the first time the point
is reached) or ``POINT:N`` (the N-th time, counted from 1). Unarmed, ``reached`` costs one
comparison. The variable is read once, when the server starts (``arm_from_environment``),
where a wrong name is refused.
"""

from __future__ import annotations

import os
import signal
import threading

from ..errors import ParameterError

#: the environment variable that arms a kill point
KILL_AT_ENV = "SCAN_SERVER_KILL_AT"

#: every kill point, in the order a session reaches them, and what is on disk when it fires
POINTS: dict[str, str] = {
    "open.folder": "the session's folder and session.json written; the index does not list it yet",
    "open.index": "the index lists the session as open; its open reply not sent",
    "batch.digest": "the batch's digest written; its batch file not yet",
    "batch.file": "the batch file written and fsynced; the recording not appended",
    "batch.recording": "the recording appended; no decision yet",
    "batch.reply": "the reply saved; not sent",
    "finish.index": "the index says finished or expired; the recording not marked complete",
    "finish.complete": "the recording marked complete and closed; the batch files still there",
    "finish.cleanup": "the first batch file removed, the others still there",
}


class _Armed:
    """The armed point and how many times it has been reached (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read = False
        self.point: str | None = None
        self.at = 1
        self.count = 0

    def read(self) -> None:
        value = os.environ.get(KILL_AT_ENV, "")
        if value:
            point, _, n = value.partition(":")
            if point not in POINTS:
                raise ParameterError(f"{KILL_AT_ENV}={value!r}: the points are {', '.join(POINTS)}")
            if n and not (n.isdigit() and int(n) >= 1):
                raise ParameterError(f"{KILL_AT_ENV}={value!r}: after the colon, a count from 1")
            self.point, self.at = point, int(n or 1)
        self._read = True

    def hit(self, point: str) -> bool:
        if self._read and point != self.point:     # the per-step path when unarmed: no lock
            return False
        with self._lock:
            if not self._read:
                self.read()
            if point != self.point:
                return False
            self.count += 1
            return self.count == self.at


_ARMED = _Armed()


def arm_from_environment() -> str | None:
    """Read ``SCAN_SERVER_KILL_AT`` (at start-up); the armed point, or None."""
    with _ARMED._lock:
        _ARMED.read()
    return _ARMED.point


def reached(point: str) -> None:
    """The service has reached ``point`` (a key of ``POINTS``): die here if it is armed."""
    assert point in POINTS, point
    if _ARMED.hit(point):
        os.kill(os.getpid(), signal.SIGKILL)
