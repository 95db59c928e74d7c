"""What a recording says about itself, what the user adds, and the one place they meet.

Every reader returns a ``FoundMetadata`` (``None`` = not in the file). The user supplies
what is missing on the command line (``--scan-shape``, ``--energy-ev`` …) or in a sidecar
JSON file (``<recording>.metadata.json`` beside the recording is picked up by itself;
``--metadata FILE`` names another). ``complete`` merges them into an ``Acquisition``:
command-line options override the sidecar; a value that contradicts the file is an error
(never a silent choice); a missing quantity is an error naming the option that supplies it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..contracts import Acquisition, GroundTruth, ProbeOptics, RasterScan
from ..errors import ParameterError, RecordingError
from ..units import detector_sampling_inv_angstrom


class MissingMetadataError(RecordingError):
    """A quantity the recording does not hold and the user did not supply."""


class ContradictoryMetadataError(RecordingError):
    """The user's value for a quantity disagrees with the recording's."""


@dataclass(frozen=True)
class DetectorSampling:
    """One detector pixel's reciprocal size as given: value and unit (1/nm, 1/A, mrad, rad)."""

    value: float
    unit: str

    def inv_angstrom(self, energy_ev: float | None) -> float:
        return detector_sampling_inv_angstrom(self.value, self.unit, energy_ev)


@dataclass(frozen=True)
class Quantities:
    """The acquisition quantities a recording may or may not hold; ``None`` = not known.
    The same record describes what a file says, what the user supplies (command line or
    sidecar) and the sidecar's schema."""

    scan_shape: tuple[int, int] | None = None
    scan_step_angstrom: float | None = None
    energy_ev: float | None = None
    semiangle_mrad: float | None = None
    c10_angstrom: float | None = None
    c30_angstrom: float | None = None
    detector_sampling: DetectorSampling | None = None
    electrons_per_pattern: float | None = None

    def merged_over(self, base: Quantities) -> Quantities:
        """These values where given, ``base``'s elsewhere."""
        return replace(base, **{f.name: getattr(self, f.name) for f in fields(self)
                                if getattr(self, f.name) is not None})


#: How the user supplies each quantity (used in every error message and by ``inspect``).
HOW_TO_SUPPLY = {
    "scan_shape": "--scan-shape NY NX",
    "scan_step_angstrom": "--scan-step-angstrom STEP",
    "energy_ev": "--energy-ev E",
    "semiangle_mrad": "--semiangle-mrad ALPHA",
    "c10_angstrom": "--c10-angstrom C10 (C10 = −defocus; 0 for a focused probe)",
    "detector_sampling": "--detector-sampling VALUE UNIT (UNIT: 1/nm, 1/A, mrad or rad)",
}
DESCRIPTION = {
    "scan_shape": "scan shape", "scan_step_angstrom": "scan step", "energy_ev": "beam energy",
    "semiangle_mrad": "convergence semi-angle", "c10_angstrom": "defocus (C10)",
    "detector_sampling": "detector sampling", "c30_angstrom": "spherical aberration (C30)",
    "electrons_per_pattern": "electrons per pattern",
}
#: The command-line option of each quantity.
OPTION = {name: "--" + name.replace("_", "-") for name in (
    "scan_shape", "scan_step_angstrom", "energy_ev", "semiangle_mrad", "c10_angstrom", "c30_angstrom",
    "detector_sampling", "electrons_per_pattern")}


@lru_cache(maxsize=1)
def _sidecar_schema() -> type[BaseModel]:
    """The sidecar's schema, derived from ``Quantities`` (detector sampling as [value, unit])."""
    hints = get_type_hints(Quantities)
    hints["detector_sampling"] = tuple[float, str] | None
    return create_model("Sidecar", __config__=ConfigDict(extra="forbid"),
                        **{name: (hint, None) for name, hint in hints.items()})  # type: ignore[call-overload]


def sidecar_path(recording: Path) -> Path:
    """``name.metadata.json`` beside ``name.h5`` / ``name.ndata`` / ``name_master.h5``."""
    stem = recording.name
    for suffix in ("_master.h5", ".h5", ".hdf5", ".ndata", ".emd"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return recording.with_name(stem + ".metadata.json")


def read_sidecar(path: Path) -> Quantities:
    try:
        raw = json.loads(path.read_text())
        model = _sidecar_schema().model_validate(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: cannot read the metadata file ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise RecordingError(f"{path}: invalid metadata file ({problems})") from exc
    values = model.model_dump()
    if values["detector_sampling"] is not None:
        values["detector_sampling"] = DetectorSampling(*values["detector_sampling"])
    return Quantities(**values)


def write_sidecar(path: Path, overrides: Quantities) -> Path:
    values: dict[str, Any] = {f.name: getattr(overrides, f.name) for f in fields(overrides)
                              if getattr(overrides, f.name) is not None}
    if "detector_sampling" in values:
        values["detector_sampling"] = [overrides.detector_sampling.value, overrides.detector_sampling.unit]
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


@dataclass
class FoundMetadata:
    """What a reader found. ``frames``: lazy (N, M, M); positions (N, 2) Å when the file
    has explicit positions; ``quantities``: what the file says (``None`` where it is silent)."""

    format: str
    frames: Any
    quantities: Quantities = field(default_factory=Quantities)
    positions_angstrom: np.ndarray | None = None
    aberrations: dict[str, float] = field(default_factory=dict)
    ground_truth: GroundTruth | None = None
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def _agree(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-9)


def _merge(name: str, found: Any, given: Any, source: str, energy_ev: float | None = None) -> Any:
    if given is None:
        return found
    if found is None:
        return given
    if isinstance(found, DetectorSampling):
        same = _agree(found.inv_angstrom(energy_ev), given.inv_angstrom(energy_ev))
    elif isinstance(found, tuple):
        same = tuple(found) == tuple(given)
    else:
        same = _agree(float(found), float(given))
    if not same:
        raise ContradictoryMetadataError(
            f"{source}: the file gives {DESCRIPTION.get(name, name)} = {found}, but {given} was supplied; "
            "leave the option out or correct it")
    return found


def missing_quantities(found: FoundMetadata, overrides: Quantities) -> list[str]:
    """Names of required quantities that neither the file nor the user gives."""
    required = ["energy_ev", "semiangle_mrad", "c10_angstrom", "detector_sampling"]
    if found.positions_angstrom is None:
        required = ["scan_shape", "scan_step_angstrom", *required]
    return [name for name in required
            if getattr(found.quantities, name) is None and getattr(overrides, name) is None]


def complete(found: FoundMetadata, overrides: Quantities, source: str) -> Acquisition:
    """Merge the file's metadata with the user's into an ``Acquisition`` (or a clear error)."""
    missing = missing_quantities(found, overrides)
    if missing:
        listing = "; ".join(f"{DESCRIPTION[m]} ({HOW_TO_SUPPLY[m]})" for m in missing)
        raise MissingMetadataError(f"{source}: not in the file, please supply: {listing} — on the command line "
                                   f"or in {sidecar_path(Path(source)).name}")
    said = found.quantities
    merged = {f.name: _merge(f.name, getattr(said, f.name), getattr(overrides, f.name), source)
              for f in fields(Quantities) if f.name != "detector_sampling"}
    merged["detector_sampling"] = _merge("detector_sampling", said.detector_sampling, overrides.detector_sampling,
                                         source, float(merged["energy_ev"]))
    n_frames, height, width = found.frames.shape
    if height != width:
        raise RecordingError(f"{source}: patterns of {height} × {width} px; only square patterns are supported")
    scan = None
    if merged["scan_shape"] is not None and merged["scan_step_angstrom"] is not None:
        try:
            scan = RasterScan(shape=tuple(int(v) for v in merged["scan_shape"]),  # type: ignore[arg-type]
                              step_angstrom=float(merged["scan_step_angstrom"]))
        except ParameterError as exc:
            raise RecordingError(f"{source}: {exc}") from exc
        if scan.count != n_frames:
            raise ContradictoryMetadataError(
                f"{source}: scan shape {scan.shape[0]} × {scan.shape[1]} = {scan.count} positions, but the file "
                f"holds {n_frames} frames")
    positions = found.positions_angstrom if found.positions_angstrom is not None else scan.positions_angstrom()
    energy = float(merged["energy_ev"])
    optics = ProbeOptics(energy_ev=energy, semiangle_mrad=float(merged["semiangle_mrad"]),
                         c10_angstrom=float(merged["c10_angstrom"]),
                         c30_angstrom=float(merged["c30_angstrom"] or 0.0), aberrations=found.aberrations)
    return Acquisition(frames=found.frames, positions_angstrom=positions, optics=optics, detector_px=height,
                       detector_sampling_inv_angstrom=merged["detector_sampling"].inv_angstrom(energy), scan=scan,
                       electrons_per_pattern=merged["electrons_per_pattern"], ground_truth=found.ground_truth,
                       metadata={"format": found.format, **found.metadata})
