"""Lazy views of diffraction patterns as a flat stack (N, M, M) in acquisition order.

Frames stay on disk: indexing reads only what is asked for. A view accepts an integer,
a slice or an integer array (any order, duplicates allowed) and returns a numpy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class FrameView:
    """Base class: ``shape``, ``dtype``, ``len`` and numpy-style indexing along frames."""

    shape: tuple[int, int, int]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"frame {key} out of range for {self.shape[0]} frames")
            return self._read(np.array([index]))[0]
        if isinstance(key, slice):
            return self._read(np.arange(*key.indices(self.shape[0])))
        indices = np.asarray(key, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.shape[0]):
            raise IndexError(f"frame indices out of range for {self.shape[0]} frames")
        return self._read(indices)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _read_sorted(dataset: Any, indices: np.ndarray) -> np.ndarray:
    """dataset[indices] for any order and repeats. Each run of consecutive frames is read
    as one slice: h5py's own fancy indexing (a point selection) is ~100× slower."""
    unique, inverse = np.unique(indices, return_inverse=True)
    out = np.empty((unique.size, *dataset.shape[1:]), dtype=dataset.dtype)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    start = 0
    for run in np.split(unique, breaks):
        if run.size:
            out[start:start + run.size] = dataset[int(run[0]):int(run[-1]) + 1]
            start += run.size
    return out[inverse]


class StackedFrames(FrameView):
    """Several (n_i, M, M) data sets back to back (e.g. Dectris data files), with an
    optional pixel mask: pixels where ``bad_pixels`` is True read as 0."""

    def __init__(self, parts: list[Any], bad_pixels: np.ndarray | None = None) -> None:
        if not parts:
            raise ValueError("no frames")
        self.parts = parts
        self.starts = np.cumsum([0] + [p.shape[0] for p in parts])
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])  # type: ignore[assignment]
        self.dtype = np.dtype(parts[0].dtype)
        self.bad_pixels = bad_pixels if bad_pixels is not None and bad_pixels.any() else None

    def close(self) -> None:
        """Close the HDF5 files behind the parts (views of in-memory arrays ignore this)."""
        for part in self.parts:
            file = getattr(part, "file", None)
            if file is not None and file.id.valid:
                file.close()

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((indices.size, *self.shape[1:]), dtype=self.dtype)
        part_of = np.searchsorted(self.starts, indices, side="right") - 1
        for part in np.unique(part_of):
            chosen = part_of == part
            out[chosen] = _read_sorted(self.parts[part], indices[chosen] - self.starts[part])
        if self.bad_pixels is not None:
            out[:, self.bad_pixels] = 0
        return out


class GridFrames(FrameView):
    """A 4-D (scan_y, scan_x, M, M) data set seen as a flat stack in row-major scan order."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        ny, nx, height, width = dataset.shape
        self.scan_shape = (int(ny), int(nx))
        self.shape = (int(ny * nx), int(height), int(width))  # type: ignore[assignment]
        self.dtype = np.dtype(dataset.dtype)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((indices.size, *self.shape[1:]), dtype=self.dtype)
        rows, cols = np.divmod(indices, self.scan_shape[1])
        for row in np.unique(rows):
            chosen = rows == row
            out[chosen] = _read_sorted(_Row(self.dataset, int(row)), cols[chosen])
        return out


class _Row:
    """One scan row of a 4-D data set, indexable like a 3-D stack."""

    def __init__(self, dataset: Any, row: int) -> None:
        self.dataset, self.row = dataset, row
        self.shape = dataset.shape[1:]
        self.dtype = dataset.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.dataset[self.row, key]
