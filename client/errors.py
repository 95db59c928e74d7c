"""Typed errors carrying the server's stable error code (docs/protocol.md)."""

from __future__ import annotations


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
    "unauthorized": Unauthorized, "unknown_session": UnknownSession, "session_finished": SessionFinished,
    "out_of_order": OutOfOrder, "busy": Busy, "unsupported_spec": BadSpec, "bad_request": BadSpec,
    "model_unavailable": ModelUnavailable, "too_many_sessions": TooManySessions,
    **{code: BadBatch for code in ("count_mismatch", "wrong_count", "bad_shape", "bad_dtype", "bad_encoding",
                                   "non_finite", "invalid_positions", "message_too_large")},
}


def error_for(code: str, message: str) -> ScanClientError:
    """The typed exception for a server error code (``ScanClientError`` for others)."""
    return _BY_CODE.get(code, ScanClientError)(message, code)
