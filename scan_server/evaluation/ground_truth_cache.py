"""A folder of ground truths (full-data reconstructions) kept between evaluations.

The ground truth of a 10,000-pattern recording takes the better part of a minute on a CPU
and is the same for every evaluation of that recording, so ``scan-server evaluate
--ground-truth-cache DIR`` keeps each one as ``DIR/<key>.npz``. The key is a sha256 of
everything the reconstruction depends on: the counts of every pattern, the positions, the
optics, the detector geometry, the iteration count, the detector corrections' version and the
package version (a new version
may reconstruct differently, so it never reads an old entry). The device is not part of
the key: an entry computed on a GPU serves a CPU run (they agree to float32 rounding).
Entries are written atomically and read without pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import __version__
from ..contracts import Acquisition, ObjectGrid
from ..physics.detector_correction import CORRECTION_VERSION
from ..physics.reconstruct import GROUND_TRUTH_ITERATIONS, Reconstruction

FRAMES_PER_READ = 1000


def cache_key(acquisition: Acquisition) -> str:
    """sha256 (hex) of the recording's patterns, positions, optics and detector, and of the
    reconstruction's iteration count and the package version."""
    digest = hashlib.sha256()
    description = {"version": __version__, "iterations": GROUND_TRUTH_ITERATIONS,
                   "detector_correction": CORRECTION_VERSION,
                   "optics": asdict(acquisition.optics), "detector_px": acquisition.detector_px,
                   "detector_sampling_inv_angstrom": acquisition.detector_sampling_inv_angstrom,
                   "count": acquisition.count}
    digest.update(json.dumps(description, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(acquisition.positions_angstrom, dtype=np.float64).tobytes())
    for start in range(0, acquisition.count, FRAMES_PER_READ):
        block = np.asarray(acquisition.frames[start:start + FRAMES_PER_READ])
        digest.update(str(block.dtype).encode())
        digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def _write(path: Path, result: Reconstruction) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, potential=result.potential, positions_angstrom=result.positions_angstrom,
                 shape_px=np.asarray(result.grid.shape_px), pixel_size_angstrom=result.grid.pixel_size_angstrom,
                 origin_angstrom=np.asarray(result.grid.origin_angstrom), seconds=result.seconds,
                 iterations=result.iterations)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _read(path: Path) -> Reconstruction:
    with np.load(path, allow_pickle=False) as stored:
        grid = ObjectGrid(shape_px=tuple(int(v) for v in stored["shape_px"]),  # type: ignore[arg-type]
                          pixel_size_angstrom=float(stored["pixel_size_angstrom"]),
                          origin_angstrom=tuple(float(v) for v in stored["origin_angstrom"]))  # type: ignore[arg-type]
        return Reconstruction(stored["potential"], grid, stored["positions_angstrom"], float(stored["seconds"]),
                              int(stored["iterations"]))


def load_or_compute(folder: Path, acquisition: Acquisition, compute: Callable[[], Reconstruction]) -> Reconstruction:
    """The cached ground truth of ``acquisition``, or ``compute()`` stored for next time."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cache_key(acquisition)}.npz"
    if path.is_file():
        return _read(path)
    result = compute()
    _write(path, result)
    return result
