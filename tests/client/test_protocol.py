"""The wire protocol is defined once, in the client, and both sides agree on it."""

import numpy as np
from scan_client import errors as client_errors
from scan_client.protocol import BATCH_ERRORS, ENCODINGS, FRAME_DTYPES, PROTOCOL_VERSION, ErrorCode, batch_header

from scan_server.service import errors as server_errors
from scan_server.service import schemas


def test_the_server_uses_the_client_s_definitions():
    assert server_errors.ErrorCode is ErrorCode
    assert schemas.FRAME_DTYPES is FRAME_DTYPES and schemas.PROTOCOL_VERSION == PROTOCOL_VERSION
    assert set(server_errors.HTTP_STATUS) == set(ErrorCode)  # every code has its HTTP status
    assert schemas.BatchHeader.model_json_schema()["properties"]["encoding"]["enum"] == list(ENCODINGS)


def test_a_client_header_is_a_valid_server_header():
    for dtype in FRAME_DTYPES:
        header = batch_header("abc", 3, "token", np.zeros((2, 2)), dtype, (2, 64, 64), "bslz4")
        parsed = schemas.BatchHeader.model_validate(header)
        assert parsed.seq == 3 and parsed.shape == (2, 64, 64) and parsed.dtype == dtype


def test_every_batch_error_is_a_typed_bad_batch():
    for code in BATCH_ERRORS:
        assert isinstance(client_errors.error_for(code.value, "x"), client_errors.BadBatch)
    assert type(client_errors.error_for("no_such_code", "x")) is client_errors.ScanClientError
