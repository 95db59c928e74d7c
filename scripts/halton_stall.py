"""The Halton stall, measured (docs/evaluation.md): coverage of the scans, and scores at 5 and
30 final iterations with ROP's step guard at 1.5× (default) and at any rise (1.0×).

Usage: .venv/bin/python scripts/halton_stall.py [RECORDING]   (default: simulates film seed 11)
About 4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from scan_server.evaluation.evaluate import ground_truth, score_reference
from scan_server.io.canonical import read_recording
from scan_server.physics.reconstruct import RopSettings, reconstruct_subsets
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.scanning.acquire import select_positions
from scan_server.scanning.baselines import halton_unit

COUNTS = (250, 335, 420, 500)
STRATEGIES = ("halton", "random", "raster")


def coverage(acquisition, name: str, count: int) -> tuple[float, float]:
    """Mean distance (Å) from the recorded grid to the nearest visited position, and the share of
    Halton points that snapping moved off their nearest recorded position."""
    recorded = acquisition.positions_angstrom
    chosen = select_positions(name, count, recorded, 0)
    distance, _ = cKDTree(recorded[chosen]).query(recorded)
    moved = float("nan")
    if name == "halton":
        low, high = recorded.min(axis=0), recorded.max(axis=0)
        nearest = cKDTree(recorded).query(low + halton_unit(count, 0) * (high - low))[1]
        moved = float(np.mean(nearest != chosen))
    return float(distance.mean()), moved


def main() -> None:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
    else:
        path = Path(tempfile.mkdtemp()) / "film_000011.h5"
        simulate_recording(preset("paper"), 11, path)
    acquisition = read_recording(path)
    print("mean distance to the nearest position (Å) at", COUNTS)
    for name in STRATEGIES:
        rows = [coverage(acquisition, name, c) for c in COUNTS]
        moved = "" if name != "halton" else f"   snapped away: {' '.join(f'{m:.3f}' for _, m in rows)}"
        print(f"  {name:7s}", " ".join(f"{d:.3f}" for d, _ in rows) + moved)
    reference = score_reference(acquisition, ground_truth(acquisition, torch.device("cpu"), progress=True))
    print("ssim_field / r_true_material at", COUNTS)
    for factor in (1.5, 1.0):
        for name in STRATEGIES:
            subsets = [select_positions(name, c, acquisition.positions_angstrom, 0) for c in COUNTS]
            for iterations in (5, 30):
                results = reconstruct_subsets(acquisition, subsets, RopSettings(iterations=iterations,
                                                                                divergence_factor=factor))
                scores = [reference.score(r.potential.real) for r in results]
                print(f"  guard {factor}× {name:7s} {iterations:2d} it:",
                      " ".join(f"{s.ssim_field:.3f}/{s.r_true_material:.3f}" for s in scores), flush=True)


if __name__ == "__main__":
    main()
