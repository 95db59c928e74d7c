"""Client of the adaptive scan service (import name ``scan_client``).

``ScanClient`` talks to a running ``scan-server serve``; ``run_scan`` drives a
``Microscope`` (anything with ``acquire(positions) -> (frames, actual_positions)``) through
a session; ``protocol`` is the wire protocol the server imports. Needs only numpy, httpx
and pyzmq (``pip install ./client``); replaying recordings (``scan-client replay``) needs
the physics and comes with the server (``scan_server.emulation``). Protocol: docs/protocol.md.
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
