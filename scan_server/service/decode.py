"""Batch messages → validated arrays: frames (n, M, M) float32 and positions (n, 2) Å.

``raw``: one buffer, C order, little-endian ``dtype``. ``bslz4``: one part per frame in
the Dectris form (uint64 BE uncompressed size, uint32 BE block size, bitshuffle-LZ4
blocks), decoded by the HDF5 bitshuffle filter of hdf5plugin on an in-memory file (the
filter's chunk format is the same), so a detector bridge forwards frames untouched."""

from __future__ import annotations

import hashlib
import struct

import h5py
import hdf5plugin
import numpy as np

from .errors import ErrorCode, ServiceError
from .schemas import FRAME_DTYPES, BatchHeader


def _check_bslz4_blocks(part: bytes, elements: int, itemsize: int) -> None:
    """Walk the LZ4 blocks (each: uint32 BE compressed size, data); they must fill the buffer
    exactly. (The filter itself decodes a truncated buffer silently into wrong counts.)"""
    block_bytes = struct.unpack(">I", part[8:12])[0]
    block_elements = block_bytes // itemsize if block_bytes else 0
    if block_elements == 0 or block_elements % 8:
        raise ServiceError(ErrorCode.bad_encoding, f"bslz4 block size {block_bytes} bytes is not a multiple of "
                                                   "8 elements")
    compressed_elements = elements - elements % 8
    blocks = -(-compressed_elements // block_elements)
    offset = 12
    for _ in range(blocks):
        if offset + 4 > len(part):
            break
        offset += 4 + struct.unpack(">I", part[offset:offset + 4])[0]
    if offset + (elements % 8) * itemsize != len(part):
        raise ServiceError(ErrorCode.bad_encoding, f"a bslz4 frame of {len(part)} bytes does not hold the "
                                                   f"{blocks} blocks its header announces (truncated or padded?)")


def decode_bslz4(parts: list[bytes], dtype: np.dtype, frame_shape: tuple[int, int]) -> np.ndarray:
    """Frames (n, ky, kx) from one bslz4 part per frame, decoded together: each part becomes
    one chunk of an in-memory data set, read back through the filter in one call."""
    elements = int(np.prod(frame_shape))
    expected = elements * dtype.itemsize
    for part in parts:
        if len(part) < 12 or struct.unpack(">Q", part[:8])[0] != expected:
            raise ServiceError(ErrorCode.bad_encoding, f"a bslz4 frame must declare {expected} uncompressed "
                                                       "bytes in its 12-byte header")
        _check_bslz4_blocks(part, elements, dtype.itemsize)
    with h5py.File(f"bslz4-{id(parts)}", "w", driver="core", backing_store=False) as f:
        data = f.create_dataset("f", shape=(len(parts), *frame_shape), chunks=(1, *frame_shape), dtype=dtype,
                                **hdf5plugin.Bitshuffle(cname="lz4"))
        for index, part in enumerate(parts):
            data.id.write_direct_chunk((index, 0, 0), part)
        try:
            return data[()]
        except OSError as exc:
            raise ServiceError(ErrorCode.bad_encoding, f"a bslz4 frame does not decode ({exc})") from exc


def encode_bslz4(frame: np.ndarray) -> bytes:
    """One frame in the Dectris bslz4 form (for tests, the replay client and stream emulators)."""
    frame = np.ascontiguousarray(frame)
    with h5py.File(f"enc-{id(frame)}", "w", driver="core", backing_store=False) as f:
        data = f.create_dataset("f", data=frame, chunks=frame.shape, **hdf5plugin.Bitshuffle(cname="lz4"))
        _, chunk = data.id.read_direct_chunk((0,) * frame.ndim)
        return bytes(chunk)


def decode_frames(header: BatchHeader, parts: list[bytes], detector_px: int,
                  expected_count: int | None = None) -> np.ndarray:
    """Frames (n, M, M) float32; every inconsistency is a ServiceError with its code. The
    declared shape is checked against the session (``detector_px``, ``expected_count``: the
    positions the last reply asked for) before anything is decoded, so the decoded size is
    bounded by what the session asked for, never by what a message claims."""
    n, ky, kx = header.shape
    if (ky, kx) != (detector_px, detector_px):
        raise ServiceError(ErrorCode.bad_shape, f"frames are {ky}×{kx} px but the session's detector is "
                                                f"{detector_px}×{detector_px}")
    if n != len(header.positions_angstrom):
        raise ServiceError(ErrorCode.count_mismatch, f"{n} frames but {len(header.positions_angstrom)} positions")
    if expected_count is not None and n != expected_count:
        raise ServiceError(ErrorCode.wrong_count, f"the last reply asked for {expected_count} positions; this "
                                                  f"batch has {n}")
    if header.dtype not in FRAME_DTYPES:
        raise ServiceError(ErrorCode.bad_dtype, f"dtype {header.dtype!r}: use one of {', '.join(FRAME_DTYPES)}")
    dtype = np.dtype(header.dtype).newbyteorder("<")
    if header.encoding == "raw":
        if len(parts) != 1:
            raise ServiceError(ErrorCode.bad_encoding, f"raw frames come in one part, got {len(parts)}")
        if len(parts[0]) != n * ky * kx * dtype.itemsize:
            raise ServiceError(ErrorCode.bad_encoding, f"the frame buffer holds {len(parts[0])} bytes; shape "
                                                       f"{list(header.shape)} of {header.dtype} needs "
                                                       f"{n * ky * kx * dtype.itemsize}")
        frames = np.frombuffer(parts[0], dtype=dtype).reshape(n, ky, kx)
    else:
        if len(parts) != n:
            raise ServiceError(ErrorCode.bad_encoding, f"bslz4 frames come one per part: {n} frames, "
                                                       f"{len(parts)} parts")
        frames = decode_bslz4(parts, dtype, (ky, kx))
    frames = frames.astype(np.float32)
    if not np.isfinite(frames).all():
        raise ServiceError(ErrorCode.non_finite, "frames hold NaN or inf")
    if (frames < 0).any():
        raise ServiceError(ErrorCode.non_finite, "frames hold negative counts")
    return frames


def decode_positions(header: BatchHeader, field_of_view_angstrom: tuple[float, float],
                     tolerance: float) -> np.ndarray:
    """Reported positions (n, 2) Å; finite and inside the field of view ± ``tolerance`` of its side."""
    positions = np.asarray(header.positions_angstrom, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(positions).all():
        raise ServiceError(ErrorCode.invalid_positions, "positions hold NaN or inf")
    fov = np.asarray(field_of_view_angstrom)
    margin = tolerance * fov
    outside = ((positions < -margin) | (positions > fov + margin)).any(axis=1)
    if outside.any():
        bad = positions[int(np.flatnonzero(outside)[0])].round(3).tolist()
        raise ServiceError(ErrorCode.invalid_positions, f"position {bad} Å lies outside the field of view "
                                                        f"(0…{fov.tolist()} Å ± {tolerance:.0%})")
    return positions


def batch_digest(header: BatchHeader, parts: list[bytes]) -> str:
    """SHA-256 (hex) of what a batch says: its positions, dtype, shape, encoding and frame parts
    (a retry of the same batch has the same digest; any other content has another)."""
    digest = hashlib.sha256()
    described = f"{header.dtype}|{list(header.shape)}|{header.encoding}|{len(parts)}|"
    digest.update(described.encode())
    digest.update(np.asarray(header.positions_angstrom, dtype="<f8").tobytes())
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()
