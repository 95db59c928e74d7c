"""The protocol's error codes (defined once, in ``scan_client.protocol``) and their HTTP status."""

from __future__ import annotations

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
