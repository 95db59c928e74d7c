"""Open any supported recording as an ``Acquisition``: the format is recognised from the
file itself, missing metadata comes from the user (see ``metadata.py``)."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters with h5py)

from ..contracts import Acquisition
from ..errors import RecordingError
from .canonical import FORMAT_NAME, read_recording
from .dectris import is_dectris, read_dectris
from .emd import is_emd, read_emd
from .metadata import (
    DESCRIPTION,
    OPTION,
    DetectorSampling,
    FoundMetadata,
    Quantities,
    complete,
    read_sidecar,
    sidecar_path,
)
from .nion import is_nion_h5, read_ndata, read_nion_h5


def find_metadata(path: Path) -> FoundMetadata | None:
    """What the file itself says; ``None`` for the canonical format (already complete)."""
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    if path.suffix == ".ndata":
        return read_ndata(path)
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise RecordingError(f"{path}: not a readable HDF5 file ({exc})") from exc
    if file.attrs.get("format") == FORMAT_NAME:
        file.close()
        return None
    for recognise, read in ((is_dectris, read_dectris), (is_nion_h5, read_nion_h5), (is_emd, read_emd)):
        if recognise(file):
            return read(path, file)
    file.close()
    raise RecordingError(f"{path}: not a recording this program knows (canonical, Nion Swift, Dectris master "
                         "or EMD 1.0 file)")


def load_overrides(path: Path, given: Quantities | None = None, metadata_file: Path | None = None
                   ) -> Quantities:
    """The user's values: command-line ``given`` over the sidecar (explicit or beside the file).
    An option that replaces a different sidecar value is said on stderr (never silently)."""
    sidecar = metadata_file or sidecar_path(path)
    base = read_sidecar(sidecar) if metadata_file is not None or sidecar.is_file() else Quantities()
    given = given or Quantities()
    for name in (f.name for f in fields(Quantities)):
        said, supplied = getattr(base, name), getattr(given, name)
        if said is not None and supplied is not None and said != supplied:
            print(f"note: {OPTION[name]} {shown(supplied)} replaces {DESCRIPTION.get(name, name)} = "
                  f"{shown(said)} from {sidecar.name}", file=sys.stderr)
    return given.merged_over(base)


def shown(value: object) -> str:
    """A quantity as a person reads it: 6 significant digits, a sampling with its unit."""
    if isinstance(value, DetectorSampling):
        return f"{value.value:.6g} {value.unit}"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def open_recording(path: str | Path, given: Quantities | None = None,
                   metadata_file: Path | None = None) -> Acquisition:
    """Any supported recording → ``Acquisition`` (frames stay on disk)."""
    path = Path(path)
    found = find_metadata(path)
    if found is None:
        if given is not None and given != Quantities():
            return _check_canonical(read_recording(path), given, path)
        return read_recording(path)
    return complete(found, load_overrides(path, given, metadata_file), str(path))


def _check_canonical(acquisition: Acquisition, given: Quantities, path: Path) -> Acquisition:
    """A canonical file is complete; options may only repeat what it says."""
    optics, scan = acquisition.optics, acquisition.scan
    said = Quantities(
        scan_shape=scan.shape if scan else None, scan_step_angstrom=scan.step_angstrom if scan else None,
        energy_ev=optics.energy_ev, semiangle_mrad=optics.semiangle_mrad, c10_angstrom=optics.c10_angstrom,
        c30_angstrom=optics.c30_angstrom,
        detector_sampling=DetectorSampling(acquisition.detector_sampling_inv_angstrom, "1/A"),
        electrons_per_pattern=acquisition.electrons_per_pattern)
    found = FoundMetadata(format="canonical", frames=acquisition.frames, quantities=said,
                          positions_angstrom=acquisition.positions_angstrom)
    complete(found, given, str(path))  # raises on a contradiction
    return acquisition
