"""Quick check of the value-map strategy against Halton (and the oracle) on a few recordings:
dose-quality curves of the headline score, and each strategy's dose ratio vs Halton.

Usage: python scripts/value_map_check.py MODEL RECORDING... [--positions 60 100 150 200 250 350]
A development tool for tuning on validation recordings (never on the evaluation set); the
yardstick (`scan-server evaluate`) is the reported measurement.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from scan_server.evaluation.dose import dose_ratio
from scan_server.evaluation.evaluate import _recorded_run, ground_truth, score_reference, score_strategies
from scan_server.io.open import open_recording
from scan_server.policy.checkpoint import load_model_folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("recordings", nargs="+")
    parser.add_argument("--positions", type=int, nargs="+", default=[60, 100, 150, 200, 250, 350])
    parser.add_argument("--strategies", nargs="+", default=["halton", "value-map", "oracle-material"])
    parser.add_argument("--cache", default="runs/gt-cache")
    args = parser.parse_args()
    device = torch.device("cpu")
    model = load_model_folder(Path(args.model), device)
    curves: dict[str, list[list[float]]] = {s: [] for s in args.strategies}
    for i, path in enumerate(args.recordings):
        acquisition = open_recording(path)
        full = ground_truth(acquisition, device, cache=Path(args.cache))
        reference = score_reference(acquisition, full)
        chosen = {}
        for name in args.strategies:
            run = _recorded_run(name, acquisition, max(args.positions), i, reference, model)
            chosen[name] = {c: run[:c] for c in args.positions}
        result = score_strategies(acquisition, full, chosen, 30, 250, device, reference)
        line = [Path(path).stem[:28].ljust(28), f"mat {reference.material_fraction:.2f}"]
        for name in args.strategies:
            curve = [result.strategies[name].scores[c].r_true_material for c in args.positions]
            curves[name].append(curve)
            line.append(f"{name}: " + " ".join(f"{v:.3f}" for v in curve))
        print(" | ".join(line), flush=True)
    for name in args.strategies:
        if name == "halton":
            continue
        ratio = dose_ratio(args.positions, curves[name], curves["halton"], 250)
        print(f"{name}: dose ratio vs halton {ratio['mean']:.2f} {ratio.get('ci95')} per recording "
              + " ".join(f"{v:.2f}" for v in ratio["per_recording"]))
    print("mean curves:", {k: np.round(np.mean(v, axis=0), 3).tolist() for k, v in curves.items()})


if __name__ == "__main__":
    main()
