"""Plot Fig. 3a: mean reward per REINFORCE iteration, per-cell Voronoi against shared reward.

Both runs log ``policy_reward``: the mean over positions of the per-cell Voronoi reward of
the policy's sampled scan (the quantity the paper plots), whichever reward drove the update."""

from __future__ import annotations

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid") if len(values) >= window else values


def main(voronoi_csv: str, shared_csv: str, out: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=150)
    for path, label in ((voronoi_csv, "per-cell Voronoi reward"), (shared_csv, "shared reward")):
        rows = list(csv.DictReader(open(path)))
        reward = np.array([float(r["reward"]) for r in rows])
        ax.plot(np.arange(len(reward)), reward, alpha=0.25)
        ax.plot(np.arange(len(smooth(reward))) + 5, smooth(reward), label=label, color=ax.lines[-1].get_color())
    ax.set_xlabel("REINFORCE iteration")
    ax.set_ylabel("mean reward per position")
    ax.set_title("Fig. 3a (small scale, cpu preset)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
