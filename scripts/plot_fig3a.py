"""Plot Fig. 3a: the reward per REINFORCE iteration, per-cell Voronoi against shared reward.

Both runs log ``reward``: the sum over an episode's positions of the per-position reward,
averaged over the batch. With the Voronoi reward that sum is Σ_FOV V / P (the cells tile
the field of view); with the shared reward every one of the P positions gets Σ_FOV V / P,
so its sum is P times larger. Dividing the shared run's value by P puts both on the same
quantity: the summed phase of the episode's final reconstruction over P."""

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


POSITIONS = 250   # 5 sub-sequences of 50


def main(voronoi_csv: str, shared_csv: str, out: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=150)
    for path, label, scale in ((voronoi_csv, "per-cell Voronoi reward", 1.0),
                               (shared_csv, "shared reward", 1.0 / POSITIONS)):
        with open(path) as f:
            rows = list(csv.DictReader(f))
        reward = np.array([float(r["reward"]) for r in rows]) * scale
        ax.plot(np.arange(len(reward)), reward, alpha=0.25)
        ax.plot(np.arange(len(smooth(reward))) + 5, smooth(reward), label=label, color=ax.lines[-1].get_color())
    ax.set_xlabel("REINFORCE iteration")
    ax.set_ylabel("Σ phase of final reconstruction / P (rad)")
    ax.set_title("Fig. 3a (small scale, cpu preset)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
