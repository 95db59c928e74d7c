"""Non-adaptive scans of N positions over a recording's field of view.

Each strategy proposes positions in normalised [0, 1]² coordinates of the field of
view; ``snap_to_recorded`` turns them into distinct recorded patterns (the nearest one
not used yet), so that a subset of a recording stands for an experiment of that dose.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import qmc

from ..errors import ParameterError

STRATEGIES = ("raster", "random", "halton")


def sparse_raster_unit(n: int) -> np.ndarray:
    """The most uniform grid of exactly n points in [0, 1]²: round(√n) rows, the points
    shared out as evenly as possible, each row evenly spaced. (n, 2) (y, x)."""
    rows = max(1, int(round(math.sqrt(n))))
    counts = np.full(rows, n // rows)
    counts[: n % rows] += 1
    points = []
    for r, count in enumerate(counts):
        y = (r + 0.5) / rows
        points += [(y, (c + 0.5) / count) for c in range(count)]
    return np.asarray(points, dtype=np.float64)


def halton_unit(n: int, seed: int) -> np.ndarray:
    """n points of a scrambled 2-D Halton sequence (scipy.stats.qmc), (n, 2) (y, x)."""
    return qmc.Halton(d=2, scramble=True, seed=seed).random(n)


def snap_to_recorded(unit_points: np.ndarray, recorded_angstrom: np.ndarray) -> np.ndarray:
    """Indices of distinct recorded positions nearest to each requested point (greedy, in
    order): a point whose nearest pattern is taken gets the nearest free one."""
    recorded = np.asarray(recorded_angstrom, dtype=np.float64)
    low, span = recorded.min(axis=0), np.ptp(recorded, axis=0)
    targets = low + np.asarray(unit_points) * span
    if len(targets) > len(recorded):
        raise ParameterError(f"asked for {len(targets)} positions but the recording has {len(recorded)}")
    tree = cKDTree(recorded)
    used = np.zeros(len(recorded), dtype=bool)
    chosen = np.empty(len(targets), dtype=np.int64)
    for i, target in enumerate(targets):
        k = 8
        while True:
            _, neighbours = tree.query(target, k=min(k, len(recorded)))
            free = [j for j in np.atleast_1d(neighbours) if not used[j]]
            if free:
                break
            k *= 4
        chosen[i] = free[0]
        used[free[0]] = True
    return chosen


def select_positions(strategy: str, n: int, recorded_angstrom: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices of n distinct recorded patterns chosen by a baseline strategy."""
    total = len(recorded_angstrom)
    if not 0 < n <= total:
        raise ParameterError(f"the number of positions must be in 1…{total}, got {n}")
    if strategy == "random":
        return np.random.default_rng(seed).choice(total, size=n, replace=False)
    if strategy == "halton":
        return snap_to_recorded(halton_unit(n, seed), recorded_angstrom)
    if strategy == "raster":
        return snap_to_recorded(sparse_raster_unit(n), recorded_angstrom)
    raise ParameterError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
