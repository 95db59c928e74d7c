"""Emit a recording as a Dectris detector stream (for testing detector bridges).

Stream v1 ("legacy" JSON, multipart): ``dheader-1.0`` + detector config; per frame
``dimage-1.0`` (series, frame), ``dimage_d-1.0`` (shape [x, y], type, encoding, size), the
bslz4 blob and ``dconfig-1.0`` (times in ns); ``dseries_end-1.0``. Stream v2 (CBOR, one
part): maps with ``type`` start | image | end, self-describe tag 55799, images under
``data`` → channel → tag 40 ``[dims, typed array]`` with typed-array tag 69 (uint16 LE) or
70 (uint32 LE) wrapping compression tag 56500 ``["bslz4", elem_size, bytes]``. Facts from
Dectris's SIMPLON stream interface documentation; the detector binds PUSH, receivers PULL. ``count`` sends
only the first N frames: the header announces N and the series still ends.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

import numpy as np

from ..contracts import Acquisition
from ..service.decode import encode_bslz4

TYPED_ARRAY_TAG = {"uint8": 64, "uint16": 69, "uint32": 70}
V1_ENCODING = {"uint8": "bs8-lz4<", "uint16": "bs16-lz4<", "uint32": "bs32-lz4<"}


def _integer_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype.name in TYPED_ARRAY_TAG:
        return frame
    return np.clip(np.rint(frame), 0, 2**32 - 1).astype(np.uint32)


def _frame_count(acquisition: Acquisition, count: int | None) -> int:
    return acquisition.count if count is None else max(0, min(count, acquisition.count))


def v1_messages(acquisition: Acquisition, series: int = 1, frame_time_s: float = 5e-4,
                count: int | None = None) -> Iterator[list[bytes]]:
    m, frames = acquisition.detector_px, _frame_count(acquisition, count)
    config = {"x_pixels_in_detector": m, "y_pixels_in_detector": m, "nimages": frames, "ntrigger": 1,
              "frame_time": frame_time_s, "count_time": frame_time_s * 0.99,
              "beam_center_x": m / 2, "beam_center_y": m / 2}
    yield [json.dumps({"htype": "dheader-1.0", "series": series, "header_detail": "basic"}).encode(),
           json.dumps(config).encode()]
    for index in range(frames):
        frame = _integer_frame(acquisition.frames[index])
        blob = encode_bslz4(frame)
        yield [json.dumps({"htype": "dimage-1.0", "series": series, "frame": index, "hash": ""}).encode(),
               json.dumps({"htype": "dimage_d-1.0", "shape": [m, m], "type": frame.dtype.name,
                           "encoding": V1_ENCODING[frame.dtype.name], "size": len(blob)}).encode(),
               blob,
               json.dumps({"htype": "dconfig-1.0", "start_time": int(index * frame_time_s * 1e9),
                           "stop_time": int((index + 0.99) * frame_time_s * 1e9),
                           "real_time": int(0.99 * frame_time_s * 1e9)}).encode()]
    yield [json.dumps({"htype": "dseries_end-1.0", "series": series}).encode()]


# ---- a minimal CBOR encoder (RFC 8949) for the v2 messages -----------------------------

def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if value < 256 ** struct.calcsize(fmt):
            return bytes([major << 5 | info]) + struct.pack(fmt, value)
    raise ValueError("integer too large for CBOR")


class Tag:
    def __init__(self, tag: int, value: object) -> None:
        self.tag, self.value = tag, value


def cbor(value: object) -> bytes:
    if isinstance(value, Tag):
        return _head(6, value.tag) + cbor(value.value)
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        data = value.encode()
        return _head(3, len(data)) + data
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


def v2_messages(acquisition: Acquisition, series: int = 1, frame_time_s: float = 5e-4,
                count: int | None = None) -> Iterator[bytes]:
    m, frames = acquisition.detector_px, _frame_count(acquisition, count)
    yield cbor(Tag(55799, {"type": "start", "series_id": series, "series_unique_id": f"replay-{series}",
                           "number_of_images": frames, "image_size_x": m, "image_size_y": m,
                           "frame_time": frame_time_s, "count_time": frame_time_s * 0.99,
                           "channels": ["threshold_1"]}))
    for index in range(frames):
        frame = _integer_frame(acquisition.frames[index])
        compressed = Tag(56500, ["bslz4", frame.dtype.itemsize, encode_bslz4(frame)])
        array = Tag(40, [[m, m], Tag(TYPED_ARRAY_TAG[frame.dtype.name], compressed)])
        yield cbor(Tag(55799, {"type": "image", "series_id": series, "image_id": index,
                               "start_time": [int(index * frame_time_s * 1e9), 1_000_000_000],
                               "stop_time": [int((index + 0.99) * frame_time_s * 1e9), 1_000_000_000],
                               "real_time": [int(0.99 * frame_time_s * 1e9), 1_000_000_000],
                               "data": {"threshold_1": array}}))
    yield cbor(Tag(55799, {"type": "end", "series_id": series, "series_unique_id": f"replay-{series}"}))
