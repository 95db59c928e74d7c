"""The wire protocol, defined once (docs/protocol.md): the server imports it from here.

Batches travel over ZeroMQ as a JSON header (``batch_header``) followed by the frames: one
part in C order (``raw``) or one part per frame (``bslz4``: Dectris bitshuffle-LZ4 with its
12-byte header, forwarded from the detector untouched). Replies and HTTP errors carry a
stable ``ErrorCode`` a client can switch on.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

PROTOCOL_VERSION = "1.0"
#: dtypes a batch may carry (little-endian; counts or expected intensities)
FRAME_DTYPES = ("uint8", "uint16", "uint32", "int32", "float32", "float64")
#: how the frame buffer follows the header
ENCODINGS = ("raw", "bslz4")


class ErrorCode(str, Enum):
    bad_request = "bad_request"                  # malformed header or body (JSON, schema)
    unauthorized = "unauthorized"                # missing or wrong token
    unknown_session = "unknown_session"
    session_finished = "session_finished"        # the budget is spent or the session was closed
    out_of_order = "out_of_order"                # seq is not the next one (nor a repeat)
    busy = "busy"                                # another batch of this session is being processed
    retry_mismatch = "retry_mismatch"            # a repeated seq whose frames or positions differ from the first
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


#: error codes that refuse the batch itself (the session is unchanged; a corrected batch may follow)
BATCH_ERRORS = (ErrorCode.count_mismatch, ErrorCode.wrong_count, ErrorCode.bad_shape, ErrorCode.bad_dtype,
                ErrorCode.bad_encoding, ErrorCode.non_finite, ErrorCode.invalid_positions,
                ErrorCode.message_too_large)


#: the HTTP header that carries a session's credential (``session_token`` of the open reply)
SESSION_TOKEN_HEADER = "X-Session-Token"


def batch_header(session_id: str, seq: int, token: str | None, positions_angstrom: np.ndarray, dtype: str,
                 shape: tuple[int, ...], encoding: str = "raw", session_token: str | None = None) -> dict:
    """Part 0 of a batch message: positions (n, 2) (y, x) Å actually visited, the frames'
    dtype (one of ``FRAME_DTYPES``) and shape (n, M, M), and their ``encoding``."""
    return {"type": "batch", "session_id": session_id, "seq": seq, "token": token, "session_token": session_token,
            "positions_angstrom": np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2).tolist(),
            "dtype": dtype, "shape": list(shape), "encoding": encoding}
