"""How much of a reconstruction's agreement with the truth the detector corrections keep: a Halton
scan of N positions of each recording (with a ground truth), reconstructed offline without and
with the corrections (``physics/detector_correction.py``), and by the service (a Halton session
played against ``scan-server serve``, its reconstruction fetched over HTTP), each scored by
Pearson r with the true phase over the true material (the yardstick's ``r_true_material``).

    .venv/bin/python scripts/detector_correction_check.py RECORDING… [--positions 250] [--iterations 30]

Prints one row per recording; the real-detectors issue's figures (docs/physics.md) were made
with it on a clean recording and the same specimen through every imperfection.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scan_client.client import ScanClient
from scan_client.microscope import run_scan

from scan_server.emulation.local_server import LocalServer
from scan_server.emulation.recorded import RecordedMicroscope, spec_for
from scan_server.evaluation.metrics import pearson, resample_to_grid
from scan_server.evaluation.scores import material_mask
from scan_server.io.open import open_recording
from scan_server.physics.detector_signals import recording_correction
from scan_server.physics.reconstruct import RopSettings, reconstruct_acquisition, reconstruction_geometry
from scan_server.scanning.acquire import select_positions
from scan_server.service.schemas import AcquisitionSpec
from scan_server.service.session import Geometry


def r_with_truth(phase: np.ndarray, grid, region, truth) -> float:
    true_phase = resample_to_grid(truth, grid)[region]
    mask = material_mask(true_phase, grid.pixel_size_angstrom)
    return pearson(np.asarray(phase)[region][mask], true_phase[mask])


def offline(acquisition, positions: int, iterations: int, corrected: bool) -> float:
    indices = select_positions("halton", positions, acquisition.positions_angstrom, 0,
                               acquisition.scan.shape if acquisition.scan else None)
    geometry = reconstruction_geometry(acquisition)
    correction = recording_correction(acquisition, geometry) if corrected else None
    result = reconstruct_acquisition(acquisition, indices, RopSettings(iterations=iterations), geometry,
                                     correction=correction)
    return r_with_truth(result.potential.real, result.grid, result.grid.scan_region(acquisition.positions_angstrom),
                        acquisition.ground_truth)


def served(server: LocalServer, acquisition, positions: int) -> float:
    spec = spec_for(acquisition, "halton", positions, 50, 0, label="detector correction check")
    microscope = RecordedMicroscope(acquisition)
    with ScanClient(server.url, server.token) as client:
        captured = {}
        run_scan(microscope, client, spec, on_open=lambda session: captured.setdefault("session", session))
        potential = captured["session"].reconstruction()
    geometry = Geometry.of(AcquisitionSpec(**spec), max_object_px=4096)
    # the session's grid is in the spec's frame (origin at the recorded field's first corner)
    grid = geometry.grid
    shifted = type(grid)(grid.shape_px, grid.pixel_size_angstrom,
                         tuple(np.asarray(grid.origin_angstrom) + microscope.origin))
    return r_with_truth(potential.real, shifted, geometry.region, acquisition.ground_truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", type=Path, nargs="+")
    parser.add_argument("--positions", type=int, default=250)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--log", type=Path, default=Path("runs/detector-correction-check/server.log"),
                        help="the server's log")
    args = parser.parse_args()
    print(f"Halton {args.positions}, {args.iterations} iterations: r with the true phase over the material")
    print("| recording | offline, uncorrected | offline, corrected | service |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        server = LocalServer(Path(folder) / "sessions", args.log, env={"OMP_NUM_THREADS": "1"},
                             rop_iterations=str(args.iterations), decision_deadline_ms="0").start()
        try:
            for path in args.recordings:
                acquisition = open_recording(path)
                if acquisition.ground_truth is None:
                    print(f"| {path} | no ground truth: skipped | | |")
                    continue
                row = [offline(acquisition, args.positions, args.iterations, False),
                       offline(acquisition, args.positions, args.iterations, True),
                       served(server, acquisition, args.positions)]
                print(f"| {path} | " + " | ".join(f"{r:.3f}" for r in row) + " |", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
