"""Batch decoding: Dectris bitshuffle-LZ4 chunks as the detector writes them, and validation."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 (registers the filters)
import numpy as np
import pytest

from scan_server.service.decode import decode_frames, decode_positions, encode_bslz4
from scan_server.service.errors import ServiceError
from scan_server.service.schemas import BatchHeader

DECTRIS_DATA = Path(__file__).parents[1] / "data" / "mos2_abtem_20x20_data_000001.h5"


def _header(n: int, encoding: str = "raw", dtype: str = "uint16") -> BatchHeader:
    return BatchHeader(type="batch", session_id="s", seq=0, positions_angstrom=[[0.0, 0.0]] * n, dtype=dtype,
                       shape=(n, 64, 64), encoding=encoding)


def test_dectris_chunks_decode_to_what_hdf5_reads():
    """Chunks read raw from a file written outside the project (one frame per chunk,
    filter 32008 bitshuffle + LZ4) are the stream's bslz4 frames."""
    with h5py.File(DECTRIS_DATA, "r") as f:
        data = f["entry/data/data"]
        chunks = [data.id.read_direct_chunk((i, 0, 0))[1] for i in range(5)]
        expected = data[:5]
    frames = decode_frames(_header(5, "bslz4"), chunks, 64)
    np.testing.assert_array_equal(frames, expected.astype(np.float32))


def test_encode_then_decode_is_exact_for_every_integer_width():
    rng = np.random.default_rng(0)
    for dtype in ("uint8", "uint16", "uint32"):
        frames = rng.integers(0, np.iinfo(dtype).max, (3, 64, 64)).astype(dtype)
        decoded = decode_frames(_header(3, "bslz4", dtype), [encode_bslz4(f) for f in frames], 64)
        np.testing.assert_array_equal(decoded, frames.astype(np.float32))


def test_a_truncated_bslz4_frame_is_a_bad_encoding():
    frame = encode_bslz4(np.ones((64, 64), dtype=np.uint16))
    with pytest.raises(ServiceError) as error:
        decode_frames(_header(1, "bslz4"), [frame[:-5]], 64)
    assert error.value.code.value == "bad_encoding"


def test_positions_outside_the_tolerance_are_refused():
    header = _header(2)
    inside = decode_positions(header.model_copy(update={"positions_angstrom": [[-0.5, 0], [10.5, 10]]}),
                              (10.0, 10.0), 0.1)
    assert inside.shape == (2, 2)
    with pytest.raises(ServiceError, match="outside"):
        decode_positions(header.model_copy(update={"positions_angstrom": [[0, 0], [11.5, 0]]}), (10.0, 10.0), 0.1)
