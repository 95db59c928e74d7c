"""Nion Swift 4D-STEM data items: ``.h5`` (root data set ``data`` + JSON attribute
``properties``) and ``.ndata`` (uncompressed zip of ``data.npy`` and ``metadata.json``).

Axes ``[sequence] + collection + datum``; a 4D-STEM item is (scan_y, scan_x, det_y,
det_x) with calibrated value = offset + index · scale. Scan axes are read in their units
(usually nm), detector axes in 1/nm, 1/Å, mrad or rad. Instrument metadata:
``metadata.instrument.high_tension`` [V], ``metadata.instrument.defocus`` [m] (C10), and
the semi-angle at ``metadata.instrument.convergence_angle`` or
``metadata.hardware_source.convergence_angle_rad`` [rad] when present.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..contracts import Acquisition
from ..errors import ParameterError, RecordingError
from ..units import length_to_angstrom
from .frames import GridFrames
from .metadata import DetectorSampling, FoundMetadata, Quantities

#: Items larger than this are written as .h5, as Nion Swift does.
LARGE_ITEM_BYTES = 16 * 1024 * 1024


def is_nion_h5(file: h5py.File) -> bool:
    return "data" in file and "properties" in file["data"].attrs


def _nested(properties: dict, *paths: tuple[str, ...]) -> Any:
    for path in paths:
        node: Any = properties
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def _found_from_properties(path: Path, properties: dict, data: Any) -> FoundMetadata:
    shape = tuple(data.shape)
    if properties.get("is_sequence"):
        raise RecordingError(f"{path}: sequences of 4D-STEM scans are not supported; export one scan")
    if (properties.get("collection_dimension_count"), properties.get("datum_dimension_count")) != (2, 2) \
            or len(shape) != 4:
        raise RecordingError(f"{path}: not a 4D-STEM item (collection 2 + datum 2 dimensions), shape {shape}")
    calibrations = properties.get("dimensional_calibrations") or [{}] * 4
    notes: list[str] = []
    step = None
    scan_cal = calibrations[0]
    if scan_cal.get("units") and scan_cal.get("scale"):
        try:
            step = length_to_angstrom(float(scan_cal["scale"]), scan_cal["units"])
        except ParameterError:
            notes.append(f"scan axis unit {scan_cal['units']!r} not understood")
    if abs(float(calibrations[0].get("scale", 0)) - float(calibrations[1].get("scale", 0))) > 1e-12:
        notes.append("the two scan axes have different steps; the first one is used")
    sampling = None
    det_cal = calibrations[2]
    if det_cal.get("units") and det_cal.get("scale"):
        sampling = DetectorSampling(float(det_cal["scale"]), det_cal["units"])
        centre = -float(det_cal.get("offset", 0.0)) / float(det_cal["scale"])
        if abs(centre - shape[2] / 2) > 0.5:
            notes.append(f"the detector calibration puts the zero frequency at pixel {centre:.1f}; "
                         f"patterns are assumed centred at {shape[2] // 2}")
    high_tension = _nested(properties, ("metadata", "instrument", "high_tension"))
    semiangle = _nested(properties, ("metadata", "instrument", "convergence_angle"),
                        ("metadata", "hardware_source", "convergence_angle_rad"))
    defocus_m = _nested(properties, ("metadata", "instrument", "defocus"))
    quantities = Quantities(
        scan_shape=(int(shape[0]), int(shape[1])), scan_step_angstrom=step,
        energy_ev=float(high_tension) if high_tension else None,
        semiangle_mrad=float(semiangle) * 1e3 if semiangle else None,
        c10_angstrom=float(defocus_m) * 1e10 if defocus_m is not None else None, detector_sampling=sampling)
    return FoundMetadata(format="nion", frames=GridFrames(data), quantities=quantities, notes=notes,
                         metadata={"title": properties.get("title", "")})


def read_nion_h5(path: Path, file: h5py.File) -> FoundMetadata:
    try:
        properties = json.loads(file["data"].attrs["properties"])
    except (json.JSONDecodeError, TypeError) as exc:
        raise RecordingError(f"{path}: the 'properties' attribute is not valid JSON ({exc})") from exc
    return _found_from_properties(path, properties, file["data"])


def read_ndata(path: Path) -> FoundMetadata:
    try:
        with zipfile.ZipFile(path) as archive:
            properties = json.loads(archive.read("metadata.json"))
            data = np.load(io.BytesIO(archive.read("data.npy")), allow_pickle=False)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, ValueError) as exc:
        raise RecordingError(f"{path}: not a readable Nion Swift .ndata item ({exc})") from exc
    return _found_from_properties(path, properties, data)


def _properties(acquisition: Acquisition, dtype: np.dtype) -> dict:
    if acquisition.scan is None:
        raise RecordingError("a Nion Swift 4D-STEM item needs a raster scan (scan shape and step)")
    ny, nx = acquisition.scan.shape
    m = acquisition.detector_px
    dk_nm = acquisition.detector_sampling_inv_angstrom * 10
    step_nm = acquisition.scan.step_angstrom / 10
    optics = acquisition.optics
    return {
        "type": "data-item", "uuid": str(uuid.uuid4()), "data_shape": [ny, nx, m, m], "data_dtype": str(dtype),
        "is_sequence": False, "collection_dimension_count": 2, "datum_dimension_count": 2,
        "intensity_calibration": {"offset": 0.0, "scale": 1.0, "units": "counts"},
        "dimensional_calibrations": [{"offset": 0.0, "scale": step_nm, "units": "nm"}] * 2
        + [{"offset": -m / 2 * dk_nm, "scale": dk_nm, "units": "1/nm"}] * 2,
        "metadata": {"instrument": {"high_tension": optics.energy_ev, "convergence_angle": optics.semiangle_mrad * 1e-3,
                                    "defocus": optics.c10_angstrom * 1e-10},
                     "scan": {"scan_size": [ny, nx], "fov_nm": [ny * step_nm, nx * step_nm]}},
        "title": "4D-STEM (written by scan-server)",
    }


def write_nion(path: Path, acquisition: Acquisition, chunk_frames: int = 256) -> Path:
    """Write ``.h5`` or ``.ndata`` (by the file's suffix) as Nion Swift would."""
    frames = acquisition.frames
    dtype = np.dtype(frames.dtype)
    properties = _properties(acquisition, dtype)
    ny, nx, m, _ = properties["data_shape"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".ndata":
        data = np.asarray(frames[:]).reshape(ny, nx, m, m)
        buffer = io.BytesIO()
        np.save(buffer, data)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("data.npy", buffer.getvalue())
            archive.writestr("metadata.json", json.dumps(properties))
        return path
    if path.suffix != ".h5":
        raise RecordingError(f"{path}: a Nion Swift item is .h5 or .ndata")
    with h5py.File(path, "w") as f:
        data = f.create_dataset("data", shape=(ny, nx, m, m), dtype=dtype, chunks=(1, 1, m, m))
        for start in range(0, ny * nx, chunk_frames):
            block = np.asarray(frames[start:min(start + chunk_frames, ny * nx)])
            for offset, frame in enumerate(block):
                row, col = divmod(start + offset, nx)
                data[row, col] = frame
        data.attrs["properties"] = json.dumps(properties)
    return path
