"""The protocol's error codes (defined once, in ``scan_client.protocol``) and their HTTP status."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from scan_client.protocol import ErrorCode

HTTP_STATUS = {
    ErrorCode.bad_request: 422, ErrorCode.unauthorized: 401, ErrorCode.unknown_session: 404,
    ErrorCode.session_finished: 409, ErrorCode.out_of_order: 409, ErrorCode.busy: 409,
    ErrorCode.retry_mismatch: 409,
    ErrorCode.count_mismatch: 422, ErrorCode.wrong_count: 422, ErrorCode.bad_shape: 422,
    ErrorCode.bad_dtype: 422, ErrorCode.bad_encoding: 422, ErrorCode.non_finite: 422,
    ErrorCode.invalid_positions: 422, ErrorCode.message_too_large: 413, ErrorCode.unsupported_spec: 422,
    ErrorCode.model_unavailable: 503, ErrorCode.too_many_sessions: 503, ErrorCode.storage_failed: 507,
    ErrorCode.not_found: 404, ErrorCode.method_not_allowed: 405, ErrorCode.internal_error: 500,
}


class ServiceError(Exception):
    """An error reply: a stable ``code`` and a message a person can act on."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class HttpErrorBody(BaseModel):
    """Every HTTP error's body."""

    code: str = Field(description="a stable error code (docs/protocol.md, \"Error codes\")")
    message: str = Field(description="what went wrong and what to do, for a person")


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: one entry per HTTP status that ``codes`` give, listing them."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(HTTP_STATUS[code], []).append(code.value)
    return {status: {"model": HttpErrorBody, "description": "error code " + ", ".join(f"`{c}`" for c in names)}
            for status, names in sorted(by_status.items())}


#: what any route may answer: a body over ``max_request_bytes`` (before it is read), a server bug
EVERY_ROUTE = error_responses(ErrorCode.message_too_large, ErrorCode.internal_error)
#: what every route behind the bearer token may answer on top
TOKEN_ROUTE = error_responses(ErrorCode.unauthorized)
#: what a session's routes may answer on top (no such session; it is not yours: 401; a bad parameter)
SESSION_ROUTE = error_responses(ErrorCode.unknown_session, ErrorCode.unauthorized, ErrorCode.bad_request)
