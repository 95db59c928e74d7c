"""EMD 1.0 files (emdfile / py4DSTEM): a 4-D array group ``data`` with ``dim0…dim3``.

Root attributes ``emd_group_type='file'``, ``version_major=1``. The first 4-D array
group found is read as a py4DSTEM DataCube: axes (Rx, Ry, Qx, Qy), taken as our
(scan y, scan x, k_y, k_x). Linear dims are stored as two values (start, start + step)
with a ``units`` attribute; ``pixels`` means uncalibrated. Beam energy, semi-angle and
defocus are not part of the layout: the user supplies them.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import ParameterError, RecordingError
from ..units import length_to_angstrom
from .frames import GridFrames
from .metadata import DetectorSampling, FoundMetadata, Quantities


def is_emd(file: h5py.File) -> bool:
    return file.attrs.get("emd_group_type") == "file" and int(file.attrs.get("version_major", 0)) == 1


def _four_d_array(file: h5py.File) -> h5py.Group | None:
    found: list[h5py.Group] = []

    def visit(_: str, node: object) -> None:
        if isinstance(node, h5py.Group) and node.attrs.get("emd_group_type") == "array" \
                and "data" in node and node["data"].ndim == 4:
            found.append(node)

    file.visititems(visit)
    return found[0] if found else None


def _step(group: h5py.Group, axis: int) -> tuple[float, str] | None:
    name = f"dim{axis}"
    if name not in group:
        return None
    values = np.asarray(group[name])
    units = str(group[name].attrs.get("units", "pixels"))
    if values.size < 2 or units.lower() in ("pixels", "px", ""):
        return None
    return float(values[1] - values[0]), units


def read_emd(path: Path, file: h5py.File) -> FoundMetadata:
    group = _four_d_array(file)
    if group is None:
        raise RecordingError(f"{path}: an EMD file without a 4-D array (no py4DSTEM DataCube)")
    notes = [f"array group {group.name}"]
    step = None
    real = _step(group, 0)
    if real is not None:
        try:
            step = length_to_angstrom(*real)
        except ParameterError:
            notes.append(f"scan axis unit {real[1]!r} not understood")
    sampling = None
    reciprocal = _step(group, 2)
    if reciprocal is not None:
        unit = {"a^-1": "1/A", "nm^-1": "1/nm"}.get(reciprocal[1].lower(), reciprocal[1])
        sampling = DetectorSampling(reciprocal[0], unit)
    data = group["data"]
    quantities = Quantities(scan_shape=(int(data.shape[0]), int(data.shape[1])), scan_step_angstrom=step,
                            detector_sampling=sampling)
    return FoundMetadata(format="emd", frames=GridFrames(data), quantities=quantities, notes=notes)
