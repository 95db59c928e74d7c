"""Typed errors carrying the server's stable error code (docs/protocol.md)."""

from __future__ import annotations

from .protocol import BATCH_ERRORS, ErrorCode


class ScanClientError(Exception):
    """An error reply from the server (``code``, ``message``) or a client-side failure."""

    code = "client_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{code or self.code}: {message}")
        self.message = message
        if code is not None:
            self.code = code


class Unauthorized(ScanClientError):
    code = "unauthorized"


class UnknownSession(ScanClientError):
    code = "unknown_session"


class SessionFinished(ScanClientError):
    code = "session_finished"


class OutOfOrder(ScanClientError):
    code = "out_of_order"


class Busy(ScanClientError):
    code = "busy"


class BadBatch(ScanClientError):
    """The batch itself was refused (shape, dtype, encoding, counts, positions, size); the
    session is unchanged and a corrected batch may be sent with the same ``seq``."""

    code = "bad_batch"


class BadSpec(ScanClientError):
    code = "unsupported_spec"


class ModelUnavailable(ScanClientError):
    code = "model_unavailable"


class TooManySessions(ScanClientError):
    code = "too_many_sessions"


class ServerUnavailable(ScanClientError):
    """No reply after every retry, or the server could not be reached."""

    code = "unavailable"


_BY_CODE: dict[str, type[ScanClientError]] = {
    ErrorCode.unauthorized: Unauthorized, ErrorCode.unknown_session: UnknownSession,
    ErrorCode.session_finished: SessionFinished, ErrorCode.out_of_order: OutOfOrder, ErrorCode.busy: Busy,
    ErrorCode.retry_mismatch: OutOfOrder,
    ErrorCode.unsupported_spec: BadSpec, ErrorCode.bad_request: BadSpec, ErrorCode.model_unavailable: ModelUnavailable,
    ErrorCode.too_many_sessions: TooManySessions, **{code: BadBatch for code in BATCH_ERRORS},
}


def error_for(code: str, message: str) -> ScanClientError:
    """The typed exception for a server error code (``ScanClientError`` for others)."""
    known = code in ErrorCode._value2member_map_
    return _BY_CODE.get(ErrorCode(code) if known else None, ScanClientError)(message, code)
