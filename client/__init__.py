"""Client of the adaptive scan service (import name ``scan_client``).

``ScanClient`` talks to a running ``scan-server serve``; ``run_scan`` drives a
``Microscope`` (anything with ``acquire(positions) -> (frames, actual_positions)``) through
a session; ``scan-client replay`` replays recordings through a server as if it were the
detector. Protocol: docs/protocol.md.
"""

from .client import ScanClient, Session
from .errors import (
    BadBatch,
    Busy,
    ModelUnavailable,
    OutOfOrder,
    ScanClientError,
    ServerUnavailable,
    SessionFinished,
    TooManySessions,
    Unauthorized,
    UnknownSession,
    error_for,
)
from .microscope import Microscope, ScanResult, run_scan

__all__ = ["BadBatch", "Busy", "Microscope", "ModelUnavailable", "OutOfOrder", "ScanClient", "ScanClientError",
           "ScanResult", "ServerUnavailable", "Session", "SessionFinished", "TooManySessions", "Unauthorized",
           "UnknownSession", "error_for", "run_scan"]
