"""Error codes of the protocol (stable: clients switch on them) and their HTTP status."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    bad_request = "bad_request"                  # malformed header or body (JSON, schema)
    unauthorized = "unauthorized"                # missing or wrong token
    unknown_session = "unknown_session"
    session_finished = "session_finished"        # the budget is spent or the session was closed
    out_of_order = "out_of_order"                # seq is not the next one (nor a repeat)
    busy = "busy"                                # another batch of this session is being processed
    count_mismatch = "count_mismatch"            # frames ≠ positions in one message
    wrong_count = "wrong_count"                  # not the number of positions the last reply asked for
    bad_shape = "bad_shape"                      # frame shape ≠ the session's detector
    bad_dtype = "bad_dtype"
    bad_encoding = "bad_encoding"                # undecodable or inconsistent frame buffer
    non_finite = "non_finite"                    # NaN, inf or negative counts
    invalid_positions = "invalid_positions"      # outside the field of view (+ tolerance) or not finite
    message_too_large = "message_too_large"
    unsupported_spec = "unsupported_spec"        # a session the server cannot serve as asked
    model_unavailable = "model_unavailable"      # adaptive asked for but no model is loaded
    too_many_sessions = "too_many_sessions"
    storage_failed = "storage_failed"            # the batch could not be persisted; state unchanged
    not_found = "not_found"                      # no such route
    method_not_allowed = "method_not_allowed"
    internal_error = "internal_error"


HTTP_STATUS = {
    ErrorCode.bad_request: 422, ErrorCode.unauthorized: 401, ErrorCode.unknown_session: 404,
    ErrorCode.session_finished: 409, ErrorCode.out_of_order: 409, ErrorCode.busy: 409,
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
