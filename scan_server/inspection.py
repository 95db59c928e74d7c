"""``scan-server inspect RECORDING``: what was read, with units, and what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .contracts import Acquisition
from .errors import ParameterError
from .io.metadata import (
    DESCRIPTION,
    HOW_TO_SUPPLY,
    FoundMetadata,
    MissingMetadataError,
    Quantities,
    complete,
    missing_quantities,
    sidecar_path,
)
from .io.open import find_metadata, load_overrides, shown
from .physics.detector_signals import calibrate_recording, recording_correction
from .physics.reconstruct import reconstruction_geometry
from .units import electron_wavelength_angstrom, inv_angstrom_to_mrad


def _row(name: str, value: object) -> None:
    print(f"  {name:<28}{value}")


def run_inspect(path: Path, overrides: Quantities, metadata_file: Path | None = None) -> None:
    """Print what ``path`` holds with units and what is missing; a ``MissingMetadataError``
    after the listing when it cannot be used yet. ``overrides``: the command line's values."""
    from .io.canonical import read_recording

    found = find_metadata(path)
    size_mb = sum(p.stat().st_size for p in path.parent.glob(path.name.replace("_master.h5", "_*.h5"))) / 1e6 \
        if path.name.endswith("_master.h5") else path.stat().st_size / 1e6
    print(f"{path}  ({size_mb:.1f} MB on disk)")
    if found is None:
        _describe_complete(read_recording(path), "canonical (scan-server-recording v1)")
        return
    given = load_overrides(path, overrides, metadata_file)
    for note in found.notes:
        print(f"  note: {note}")
    missing = missing_quantities(found, given)
    if missing:
        _row("format", found.format)
        _describe_partial(found, given)
        print("\nmissing (the recording cannot be used until these are supplied):")
        for name in missing:
            print(f"  {DESCRIPTION[name]:<24}{HOW_TO_SUPPLY[name]}")
        print(f"  (or write them into {sidecar_path(path).name} beside the recording: JSON with the same names, "
              'e.g. {"scan_shape": [100, 100], "detector_sampling": [0.4759, "1/nm"]})\n')
        raise MissingMetadataError(f"{path.name} cannot be used yet: {len(missing)} "
                                   f"quantit{'y' if len(missing) == 1 else 'ies'} missing (listed above)")
    _describe_complete(complete(found, given, str(path)), found.format)


def _describe_partial(found: FoundMetadata, given: Quantities) -> None:
    _row("frames", f"{found.frames.shape} {found.frames.dtype}")
    for name in ("scan_shape", "scan_step_angstrom", "energy_ev", "semiangle_mrad", "c10_angstrom",
                 "detector_sampling", "electrons_per_pattern"):
        in_file, supplied = getattr(found.quantities, name), getattr(given, name)
        value = in_file if in_file is not None else supplied
        origin = "file" if in_file is not None else ("supplied" if supplied is not None else "")
        _row(name, f"{shown(value)}  ({origin})" if origin else "—")


def _describe_complete(acquisition: Acquisition, file_format: str) -> None:
    optics = acquisition.optics
    print(f"  {'format':<28}{file_format}")
    _row("frames", f"{acquisition.frames.shape} {acquisition.frames.dtype} (N, k_y, k_x)")
    if acquisition.scan:
        _row("scan", f"{acquisition.scan.shape[0]} × {acquisition.scan.shape[1]} positions, "
                     f"step {acquisition.scan.step_angstrom:.4g} Å")
    extent = np.ptp(acquisition.positions_angstrom, axis=0)
    _row("field of view", f"{extent[0]:.2f} × {extent[1]:.2f} Å")
    _row("beam energy", f"{optics.energy_ev / 1e3:.4g} keV (λ = {electron_wavelength_angstrom(optics.energy_ev):.5f} Å)")
    _row("convergence semi-angle", f"{optics.semiangle_mrad:.4g} mrad")
    _row("defocus", f"C10 = {optics.c10_angstrom:.4g} Å, Cs = {optics.c30_angstrom:.4g} Å")
    dk = acquisition.detector_sampling_inv_angstrom
    _row("detector sampling", f"{dk:.5g} Å⁻¹ per pixel = {inv_angstrom_to_mrad(dk, optics.energy_ev):.4g} mrad")
    half = acquisition.detector_px / 2 * dk
    _row("detector reaches", f"{half:.3g} Å⁻¹ = {inv_angstrom_to_mrad(half, optics.energy_ev):.4g} mrad "
                             f"({half / (optics.semiangle_mrad * 1e-3 / electron_wavelength_angstrom(optics.energy_ev)):.2f}"
                             " × the aperture)")
    _row("real-space pixel", f"{1 / (acquisition.detector_px * dk):.4g} Å (1/(M Δk))")
    if acquisition.electrons_per_pattern:
        _row("dose", f"{acquisition.electrons_per_pattern:.3g} e⁻/pattern, "
                     f"{acquisition.dose_e_per_angstrom2():.3g} e⁻/Å² for all {acquisition.count} positions")
    else:
        _row("dose", "unknown (--electrons-per-pattern N to state it)")
    _row("ground truth", "yes" if acquisition.ground_truth is not None else "no")
    _describe_measured(acquisition)
    print("\nnothing missing: ready to reconstruct or replay")


def _describe_measured(acquisition: Acquisition) -> None:
    """The detector geometry measured from the patterns (physics/calibration.py) beside the metadata's."""
    try:
        calibration = calibrate_recording(acquisition)
    except ParameterError as exc:
        print(f"\nthe detector geometry could not be measured from the patterns: {exc}")
        return
    try:
        correction = recording_correction(acquisition, reconstruction_geometry(acquisition))
    except ParameterError as exc:
        correction = None
        refused = str(exc)
    print(f"\nmeasured from {calibration.patterns} patterns (physics/calibration.py):")
    verdict = (f"DISAGREES with the metadata by {100 * calibration.radius_error:+.1f} % (a semi-angle or detector "
               "sampling miscalibration; the measured disc is used for the dark field and the reconstruction)"
               if calibration.radius_disagrees else f"agrees with the metadata ({100 * calibration.radius_error:+.1f} %)")
    _row("bright-field disc radius", f"{calibration.radius_px:.2f} px (metadata: {calibration.nominal_radius_px:.2f} px): "
                                     f"{verdict}")
    _row("disc centre", f"({calibration.centre_px[0]:.2f}, {calibration.centre_px[1]:.2f}) px "
                        f"(nominal ({acquisition.detector_px / 2:.1f}, {acquisition.detector_px / 2:.1f}))")
    _row("disc edge width", f"σ = {calibration.edge_sigma_px:.2f} px (dark field counted from "
                            f"{calibration.dark_field_radius_px:.2f} px)")
    _row("descan", f"the disc moves {calibration.descan_range_px(acquisition.positions_angstrom):.2f} px across the scan")
    _row("hot / dead pixels", f"{calibration.hot_pixels} / {calibration.dead_pixels} (masked)")
    _row("background", f"{calibration.background_per_px:.3g} counts per pixel per frame")
    if correction is None:
        print(f"\nthe reconstruction cannot be corrected for this detector (it takes the metadata): {refused}")
        return
    print("\nthe reconstruction uses (physics/detector_correction.py; `reconstruct --no-detector-correction` to compare):")
    _row("semi-angle", f"{correction.semiangle_mrad:.2f} mrad, the aperture that fits the patterns "
                       f"(metadata: {acquisition.optics.semiangle_mrad:.2f} mrad)")
    _row("point-spread", f"σ = {correction.psf_px:.2f} px in the forward model" if correction.psf_px > 0
         else "none modelled (the edge is as sharp as the model's own)")
