"""Does warm-starting the per-step reconstruction change the adaptive policy's decisions?

For each recording, the GRU policy (``adaptive``) of a model is played to ``--positions``
with the reconstruction before each step made two ways: from scratch (the previous
release's path: ``rop_iterations`` passes over everything acquired) and warm-started
(``physics.incremental``: the previous estimate, local passes over the new patterns, global
passes over all). Both scans are then scored as the yardstick scores them: the recorded
patterns a scan chose, at each count, reconstructed with ``--final-iterations`` and scored
against the recording's truth over the material (r_true_material), the reference being the
converged full-data reconstruction (read from ``--ground-truth-cache``).

Prints per recording the step reconstruction time and the final-scan scores of both ways;
writes ``warm_start.json`` and ``warm_start.png`` (score against positions, both ways, and
each step's reconstruction time) to ``--out``.

    .venv/bin/python scripts/warm_start_check.py --model models/mos2-cpu-v2 \
        --data data/evaluation-set/*.h5 --ground-truth-cache runs/gt-cache --out docs/results/warm-start
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scan_server.contracts import Acquisition, ObjectGrid  # noqa: E402
from scan_server.evaluation.evaluate import ground_truth, score_reference  # noqa: E402
from scan_server.io.canonical import read_recording  # noqa: E402
from scan_server.physics.incremental import IncrementalReconstruction, WarmStartSettings, advance  # noqa: E402
from scan_server.physics.reconstruct import (  # noqa: E402
    RopSettings,
    reconstruct_sets,
    reconstruct_subsets,
    reconstruction_geometry,
)
from scan_server.policy.model_folder import ModelFolder  # noqa: E402
from scan_server.policy.strategy import AdaptiveScan  # noqa: E402
from scan_server.scanning.state import ScanState  # noqa: E402
from scan_server.scanning.virtual_microscope import VirtualMicroscope  # noqa: E402

WAYS = ("scratch", "warm")


def play(acquisition: Acquisition, model, total: int, way: str, warm: WarmStartSettings,
         iterations: int) -> tuple[np.ndarray, list[float]]:
    """The recorded indices the GRU chose and each step's reconstruction time (ms)."""
    geometry = reconstruction_geometry(acquisition)
    grid = ObjectGrid.covering(acquisition.positions_angstrom, geometry)
    microscope = VirtualMicroscope.over(acquisition)
    region = microscope.field.region(grid)
    strategy = AdaptiveScan(model)
    incremental = IncrementalReconstruction(acquisition.optics, grid, geometry, torch.device("cpu"), warm)
    n = model.settings.policy.subsequence
    frames, positions, chosen, times = [], [], [], []
    potential = None
    while sum(len(c) for c in chosen) < total:
        acquired = np.concatenate(positions) if positions else np.empty((0, 2))
        if positions:
            started = time.perf_counter()
            if way == "warm":
                potential = advance([incremental])[0].numpy()
            else:
                potential = reconstruct_sets([np.concatenate(frames)], [acquired], [acquisition.optics], grid,
                                             geometry, iterations)[0].numpy()
            times.append(1e3 * (time.perf_counter() - started))
        state = ScanState(microscope.to_unit(acquired), potential, len(chosen), region)
        count = min(n, total - sum(len(c) for c in chosen))
        exposure = microscope.acquire(microscope.to_angstrom(strategy.next_positions(state, count)))
        chosen.append(exposure.indices)
        frames.append(np.asarray(exposure.frames, dtype=np.float32))
        positions.append(exposure.positions_angstrom)
        incremental.add(frames[-1], positions[-1])
    return np.concatenate(chosen)[:total], times


def check(acquisition: Acquisition, model, counts: list[int], warm: WarmStartSettings, iterations: int,
          final_iterations: int, cache: Path | None) -> dict:
    full = ground_truth(acquisition, torch.device("cpu"), cache=cache)
    reference = score_reference(acquisition, full)
    result = {"family": (acquisition.metadata.get("specimen") or {}).get("family")}
    for way in WAYS:
        indices, times = play(acquisition, model, max(counts), way, warm, iterations)
        finals = reconstruct_subsets(acquisition, [indices[:c] for c in counts],
                                     RopSettings(iterations=final_iterations))
        result[way] = {"indices": indices.tolist(), "step_ms": times,
                       "r_true_material": [reference.score(f.potential.real).r_true_material for f in finals]}
    return result


def figure(results: dict[str, dict], counts: list[int], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in results.items():
        line, = left.plot(counts, r["scratch"]["r_true_material"], "-", lw=1.2)
        left.plot(counts, r["warm"]["r_true_material"], "--", lw=1.2, color=line.get_color())
        steps = np.arange(1, len(r["scratch"]["step_ms"]) + 1)
        right.plot(steps, r["scratch"]["step_ms"], "-", color=line.get_color(), lw=1)
        right.plot(steps, r["warm"]["step_ms"], "--", color=line.get_color(), lw=1)
    left.set(xlabel="positions", ylabel="r_true over material (final scan, converged)",
             title="adaptive: scratch (solid) vs warm-started (dashed)")
    right.set(xlabel="step", ylabel="reconstruction before the step (ms)", title="step reconstruction time")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--positions", type=int, nargs="+", default=[100, 150, 200, 250])
    parser.add_argument("--iterations", type=int, default=5, help="from-scratch passes per step (paper: 5)")
    parser.add_argument("--local-iterations", type=int, default=WarmStartSettings.local_iterations)
    parser.add_argument("--global-iterations", type=int, default=WarmStartSettings.global_iterations)
    parser.add_argument("--final-iterations", type=int, default=30)
    parser.add_argument("--ground-truth-cache", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, _ = ModelFolder(args.model).load(torch.device("cpu"))
    model.eval()
    warm = WarmStartSettings(args.iterations, args.local_iterations, args.global_iterations)
    counts = sorted(args.positions)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in args.data:
        r = check(read_recording(path), model, counts, warm, args.iterations, args.final_iterations,
                  args.ground_truth_cache)
        results[path.stem] = r
        s, w = r["scratch"], r["warm"]
        print(f"{path.stem:32s} step ms scratch {np.mean(s['step_ms']):6.1f} warm {np.mean(w['step_ms']):6.1f} | "
              "r_true " + " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(s["r_true_material"], w["r_true_material"])),
              flush=True)
    diffs = np.array([np.subtract(r["warm"]["r_true_material"], r["scratch"]["r_true_material"])
                      for r in results.values()])
    summary = {"counts": counts, "settings": {"iterations": args.iterations, "local": args.local_iterations,
                                              "global": args.global_iterations, "final": args.final_iterations},
               "mean_difference_warm_minus_scratch": diffs.mean(axis=0).tolist(),
               "std_difference": diffs.std(axis=0, ddof=1).tolist() if len(diffs) > 1 else None,
               "recordings": results}
    (args.out / "warm_start.json").write_text(json.dumps(summary, indent=1))
    figure(results, counts, args.out / "warm_start.png")
    print("mean r_true difference warm − scratch per count:",
          " ".join(f"{c}: {d:+.4f}" for c, d in zip(counts, diffs.mean(axis=0))))


if __name__ == "__main__":
    main()
