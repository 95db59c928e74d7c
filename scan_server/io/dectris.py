"""Dectris HDF5 file-writer recordings, legacy NXmx layout (facts: docs/formats in shared design).

``<name>_master.h5`` links ``/entry/data/data_000001``, ``data_000002`` … to
``/entry/data/data`` in ``<name>_data_00000k.h5``; frames are a flat stack in trigger
order, compressed with bitshuffle-LZ4 (HDF5 filter 32008, through hdf5plugin). The scan
shape, scan step, semi-angle and defocus are not in these files: the user supplies them
(or the sidecar written beside the master by our writer). Masked pixels (any bit of
``detectorSpecific/pixel_mask`` set) read as 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from ..contracts import Acquisition
from ..errors import RecordingError
from ..units import electron_wavelength_angstrom, energy_ev_from_wavelength_angstrom
from .frames import StackedFrames
from .metadata import DetectorSampling, FoundMetadata, Quantities, sidecar_path, write_sidecar

DETECTOR = "/entry/instrument/detector"
#: Pixel pitch written by our writer (Dectris ARINA/ELA/QUADRO: 75 µm).
PIXEL_SIZE_M = 75e-6


def is_dectris(file: h5py.File) -> bool:
    return "entry" in file and "data" in file["entry"] and DETECTOR in file


def _scalar(file: h5py.File, path: str) -> Any:
    if path not in file:
        return None
    value = file[path][()]
    return value.decode() if isinstance(value, bytes) else value


def read_dectris(path: Path, file: h5py.File) -> FoundMetadata:
    """Open the master file's data sets lazily (every linked data file must exist)."""
    data_group = file["/entry/data"]
    parts = []
    for key in sorted(data_group):
        link = data_group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink) and not (path.parent / link.filename).is_file():
            raise RecordingError(f"{path}: data file {link.filename} (linked as /entry/data/{key}) is missing")
        try:
            dataset = data_group[key]
        except (KeyError, OSError) as exc:
            raise RecordingError(f"{path}: cannot open /entry/data/{key} ({exc})") from exc
        if dataset.ndim == 4:  # v2024.2 layout: (n, channel, y, x); use the first channel
            raise RecordingError(f"{path}: multi-channel (v2024.2) Dectris files are not supported yet")
        parts.append(dataset)
    if not parts:
        raise RecordingError(f"{path}: no frames under /entry/data")
    mask_path = f"{DETECTOR}/detectorSpecific/pixel_mask"
    bad = np.asarray(file[mask_path]) != 0 if mask_path in file else None
    wavelength = _scalar(file, "/entry/instrument/beam/incident_wavelength")
    energy = energy_ev_from_wavelength_angstrom(float(wavelength)) if wavelength else None
    pixel = _scalar(file, f"{DETECTOR}/x_pixel_size")
    distance = _scalar(file, f"{DETECTOR}/detector_distance")
    sampling = DetectorSampling(float(pixel) / float(distance), "rad") if pixel and distance else None
    frames = StackedFrames(parts, bad)
    notes = [f"{len(parts)} data file(s)", f"{int(bad.sum()) if bad is not None else 0} masked pixels"]
    if sampling is None:
        notes.append("detector_distance is missing or zero: the detector sampling is unknown")
    return FoundMetadata(format="dectris", frames=frames, notes=notes,
                         quantities=Quantities(energy_ev=energy, detector_sampling=sampling),
                         metadata={"description": _scalar(file, f"{DETECTOR}/description") or ""})


def write_dectris(master: Path, acquisition: Acquisition, frames_per_file: int = 1000,
                  bad_pixels: np.ndarray | None = None, chunk_frames: int = 256) -> Path:
    """Write a master file and data files of ``frames_per_file`` frames (bitshuffle-LZ4),
    plus a sidecar with what the Dectris layout cannot hold (scan shape and step, optics)."""
    if not master.name.endswith("_master.h5"):
        raise RecordingError(f"{master}: a Dectris master file name must end in _master.h5")
    base = master.name[: -len("_master.h5")]
    n, m = acquisition.count, acquisition.detector_px
    max_value = np.iinfo(np.uint16).max
    wavelength = electron_wavelength_angstrom(acquisition.optics.energy_ev)
    master.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(master, "w") as f:
        for k, start in enumerate(range(0, n, frames_per_file), start=1):
            stop = min(start + frames_per_file, n)
            name = f"{base}_data_{k:06d}.h5"
            with h5py.File(master.parent / name, "w") as d:
                data = d.create_dataset("/entry/data/data", shape=(stop - start, m, m), dtype=np.uint16,
                                        chunks=(1, m, m), **hdf5plugin.Bitshuffle(cname="lz4"))
                data.attrs.update({"image_nr_low": start + 1, "image_nr_high": stop})
                for c in range(start, stop, chunk_frames):
                    block = np.asarray(acquisition.frames[c:min(c + chunk_frames, stop)], dtype=np.float64)
                    block = np.clip(np.rint(block), 0, max_value).astype(np.uint16)
                    if bad_pixels is not None:
                        block[:, bad_pixels] = max_value  # what a detector writes into masked pixels
                    data[c - start:c - start + len(block)] = block
            f[f"/entry/data/data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
        det = f.create_group(DETECTOR)
        distance = PIXEL_SIZE_M / (acquisition.detector_sampling_inv_angstrom * wavelength)
        for key, value in {"x_pixel_size": PIXEL_SIZE_M, "y_pixel_size": PIXEL_SIZE_M, "detector_distance": distance,
                           "beam_center_x": m / 2, "beam_center_y": m / 2, "count_time": 1e-3, "frame_time": 1e-3,
                           "bit_depth_image": 16, "countrate_correction_applied": 1, "pixel_mask_applied": 0,
                           "description": "Dectris detector (written by scan-server)"}.items():
            det[key] = value
        specific = det.create_group("detectorSpecific")
        for key, value in {"nimages": n, "ntrigger": 1, "x_pixels_in_detector": m, "y_pixels_in_detector": m}.items():
            specific[key] = value
        mask = np.zeros((m, m), dtype=np.uint32) if bad_pixels is None else bad_pixels.astype(np.uint32)
        specific.create_dataset("pixel_mask", data=mask)
        f["/entry/instrument/beam/incident_wavelength"] = wavelength
    scan = acquisition.scan
    write_sidecar(sidecar_path(master), Quantities(
        scan_shape=scan.shape if scan else None, scan_step_angstrom=scan.step_angstrom if scan else None,
        semiangle_mrad=acquisition.optics.semiangle_mrad, c10_angstrom=acquisition.optics.c10_angstrom,
        c30_angstrom=acquisition.optics.c30_angstrom, electrons_per_pattern=acquisition.electrons_per_pattern))
    return master
