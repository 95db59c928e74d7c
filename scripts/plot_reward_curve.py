"""The REINFORCE reward curves of one or more ``train rl`` runs, smoothed, in one figure.

Each run's ``rl.csv`` is read; the column (default ``gap_to_halton``: the headline score of the
sampled episodes after the last sub-sequence minus the Halton scan's on the same specimens) is
averaged over windows of ``--window`` iterations and drawn with ± one standard error of each
window's mean. A straight line fitted to the raw values gives the slope printed per run (per
100 iterations, with its standard error), so "does it rise" is a number, not an impression.

    .venv/bin/python scripts/plot_reward_curve.py runs/v2-rl-halton/rl.csv:halton \\
        runs/v2-rl-specimen/rl.csv:specimen --out docs/results/reinforce/reward_curve.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib
import numpy as np
from scipy.stats import linregress

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def windows(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre iteration (1-based), mean and standard error of each full window."""
    count = len(values) // window
    blocks = values[: count * window].reshape(count, window)
    centres = np.arange(count) * window + (window + 1) / 2
    return centres, blocks.mean(axis=1), blocks.std(axis=1, ddof=1) / np.sqrt(window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="CSV[:LABEL]")
    parser.add_argument("--column", default="gap_to_halton")
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for spec in args.runs:
        path, _, label = spec.partition(":")
        rows = list(csv.DictReader(open(path)))
        values = np.array([float(r[args.column]) for r in rows])
        iterations = np.array([int(r["iteration"]) for r in rows])
        fit = linregress(iterations, values)
        centres, means, errors = windows(values, args.window)
        label = label or path
        ax.errorbar(centres, means, errors, marker="o", ms=3, capsize=2,
                    label=f"{label}: slope {100 * fit.slope:+.4f} ± {100 * fit.stderr:.4f} / 100 it")
        print(f"{label}: {len(values)} iterations, first window {means[0]:+.4f} ± {errors[0]:.4f}, "
              f"last window {means[-1]:+.4f} ± {errors[-1]:.4f}, slope {100 * fit.slope:+.5f} ± "
              f"{100 * fit.stderr:.5f} per 100 iterations")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{args.column} (mean of {args.window} iterations)")
    ax.legend(fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
