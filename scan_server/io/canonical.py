"""The project's canonical recording format (HDF5), version 1. Layout: docs/recording-format.md.

Frames are written in chunks as they are produced, to ``<name>.partial`` that is renamed
to ``<name>`` only when the recording is complete, so a crash never leaves a file that
looks complete. Integer frames are compressed with bitshuffle-LZ4 (hdf5plugin).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from ..contracts import Acquisition, GroundTruth, ObjectGrid, ProbeOptics, RasterScan
from ..errors import RecordingError
from .frames import StackedFrames

FORMAT_NAME = "scan-server-recording"
FORMAT_VERSION = 1


def frame_dtype(max_counts: float | None, noise_free: bool) -> np.dtype:
    """Storage type for frames: float32 for expected (noise-free) counts, else the
    smallest unsigned integer that holds ``max_counts``."""
    if noise_free:
        return np.dtype(np.float32)
    return np.dtype(np.uint16) if max_counts is not None and max_counts < 65535 else np.dtype(np.uint32)


def write_header(f: h5py.File, optics: ProbeOptics, detector_px: int, detector_sampling_inv_angstrom: float,
                 scan: RasterScan | None = None, electrons_per_pattern: float | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
    """The root and ``/acquisition`` attributes (``complete`` starts false)."""
    f.attrs.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "complete": False})
    acq = f.create_group("acquisition")
    acq.attrs.update({
        "energy_ev": optics.energy_ev, "semiangle_mrad": optics.semiangle_mrad,
        "c10_angstrom": optics.c10_angstrom, "c30_angstrom": optics.c30_angstrom,
        "aberrations_json": json.dumps(dict(optics.aberrations)),
        "detector_px": detector_px, "detector_sampling_inv_angstrom": detector_sampling_inv_angstrom,
        "electrons_per_pattern": np.nan if electrons_per_pattern is None else electrons_per_pattern,
    })
    if scan is not None:
        acq.attrs["scan_shape"] = np.asarray(scan.shape, dtype=np.int64)
        acq.attrs["scan_step_angstrom"] = scan.step_angstrom
    f.attrs["metadata_json"] = json.dumps(metadata or {})


class RecordingWriter:
    """Write a recording chunk by chunk. Use as a context manager.

    frames_dtype: uint16/uint32 counts or float32 expected intensities (noise-free).
    """

    def __init__(self, path: str | Path, positions_angstrom: np.ndarray, optics: ProbeOptics,
                 detector_px: int, detector_sampling_inv_angstrom: float, frames_dtype: np.dtype,
                 scan: RasterScan | None = None, electrons_per_pattern: float | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        positions = np.asarray(positions_angstrom, dtype=np.float64)
        self._file = h5py.File(self.partial, "w")
        f = self._file
        compression = hdf5plugin.Bitshuffle(cname="lz4") if np.dtype(frames_dtype).kind == "u" else {}
        chunk = (min(64, len(positions)), detector_px, detector_px)
        self.frames = f.create_dataset("frames", shape=(len(positions), detector_px, detector_px),
                                       dtype=frames_dtype, chunks=chunk, **compression)
        f.create_dataset("positions_angstrom", data=positions)
        write_header(f, optics, detector_px, detector_sampling_inv_angstrom, scan, electrons_per_pattern, metadata)

    def write_frames(self, start: int, frames: np.ndarray) -> None:
        """Store frames [start, start + len(frames))."""
        self.frames[start:start + len(frames)] = frames.astype(self.frames.dtype, copy=False)

    def set_attribute(self, name: str, value: float | int | str) -> None:
        """A provenance attribute on the file's root (e.g. ``simulation_seconds``)."""
        self._file.attrs[name] = value

    def write_ground_truth(self, truth: GroundTruth) -> None:
        group = self._file.create_group("ground_truth")
        group.create_dataset("phase_rad", data=np.asarray(truth.phase_rad, dtype=np.float32))
        group.attrs["pixel_size_angstrom"] = truth.grid.pixel_size_angstrom
        group.attrs["origin_angstrom"] = np.asarray(truth.grid.origin_angstrom, dtype=np.float64)

    def close(self, complete: bool = True) -> None:
        if not self._file.id.valid:
            return
        self._file.attrs["complete"] = complete
        self._file.close()
        if complete:
            os.replace(self.partial, self.path)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(complete=exc_type is None)


def _require(group: h5py.Group, name: str, path: Path) -> Any:
    if name not in group and name not in group.attrs:
        raise RecordingError(f"{path}: missing '{group.name.rstrip('/')}/{name}' (not a complete "
                             f"{FORMAT_NAME} v{FORMAT_VERSION} file)")
    return group[name] if name in group else group.attrs[name]


def read_recording(path: str | Path) -> Acquisition:
    """Open a canonical recording; ``frames`` stays on disk (a lazy view of the h5py data set)."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise RecordingError(f"{path}: not a readable HDF5 file ({exc})") from exc
    if f.attrs.get("format") != FORMAT_NAME:
        raise RecordingError(f"{path}: not a {FORMAT_NAME} file (attribute 'format' is "
                             f"{f.attrs.get('format')!r})")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise RecordingError(f"{path}: format version {version} is not supported (expected {FORMAT_VERSION})")
    if not bool(f.attrs.get("complete", False)):
        raise RecordingError(f"{path}: the recording is incomplete (its writer did not finish)")
    frames = _require(f, "frames", path)
    positions = np.asarray(_require(f, "positions_angstrom", path), dtype=np.float64)
    acq = _require(f, "acquisition", path)
    if frames.ndim != 3 or frames.shape[1] != frames.shape[2]:
        raise RecordingError(f"{path}: frames must be (N, M, M), got {frames.shape}")
    if positions.shape != (frames.shape[0], 2):
        raise RecordingError(f"{path}: {frames.shape[0]} frames but positions of shape {positions.shape}")
    attrs = {key: _require(acq, key, path) for key in (
        "energy_ev", "semiangle_mrad", "c10_angstrom", "c30_angstrom", "detector_px",
        "detector_sampling_inv_angstrom")}
    optics = ProbeOptics(energy_ev=float(attrs["energy_ev"]), semiangle_mrad=float(attrs["semiangle_mrad"]),
                         c10_angstrom=float(attrs["c10_angstrom"]), c30_angstrom=float(attrs["c30_angstrom"]),
                         aberrations=json.loads(acq.attrs.get("aberrations_json", "{}")))
    if int(attrs["detector_px"]) != frames.shape[1]:
        raise RecordingError(f"{path}: detector_px {attrs['detector_px']} but frames are {frames.shape[1]} px")
    scan = None
    if "scan_shape" in acq.attrs:
        scan = RasterScan(shape=tuple(int(v) for v in acq.attrs["scan_shape"]),  # type: ignore[arg-type]
                          step_angstrom=float(acq.attrs["scan_step_angstrom"]))
    electrons = float(acq.attrs.get("electrons_per_pattern", np.nan))
    truth = None
    if "ground_truth" in f:
        group = f["ground_truth"]
        phase = np.asarray(group["phase_rad"])
        grid = ObjectGrid(shape_px=phase.shape, pixel_size_angstrom=float(group.attrs["pixel_size_angstrom"]),
                          origin_angstrom=tuple(float(v) for v in group.attrs["origin_angstrom"]))  # type: ignore[arg-type]
        truth = GroundTruth(phase_rad=phase, grid=grid)
    return Acquisition(frames=StackedFrames([frames]), positions_angstrom=positions, optics=optics,
                       detector_px=int(attrs["detector_px"]),
                       detector_sampling_inv_angstrom=float(attrs["detector_sampling_inv_angstrom"]),
                       scan=scan, electrons_per_pattern=None if np.isnan(electrons) else electrons,
                       ground_truth=truth, metadata=json.loads(f.attrs.get("metadata_json", "{}")))
