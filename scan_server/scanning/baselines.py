"""The non-adaptive scans: random, Halton, sparse and full raster (``ScanStrategy``s that
ignore the state). How a strategy is played on a recording: ``acquire.py``."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from .state import ScanState


def sparse_raster_unit(n: int) -> np.ndarray:
    """The most uniform grid of exactly n points in [0, 1]²: round(√n) rows, the points
    shared out as evenly as possible, each row evenly spaced. (n, 2) (y, x)."""
    rows = max(1, int(round(math.sqrt(n))))
    counts = np.full(rows, n // rows)
    counts[: n % rows] += 1
    points = [((r + 0.5) / rows, (c + 0.5) / count) for r, count in enumerate(counts) for c in range(count)]
    return np.asarray(points, dtype=np.float64)


def halton_unit(n: int, seed: int, skip: int = 0) -> np.ndarray:
    """Points skip … skip+n−1 of a scrambled 2-D Halton sequence (scipy.stats.qmc)."""
    from scipy.stats import qmc  # imported here: scipy.stats takes ~1 s, and the command line lists strategies

    sampler = qmc.Halton(d=2, scramble=True, seed=seed)
    if skip:
        sampler.fast_forward(skip)
    return sampler.random(n)


class _PlannedStrategy:
    """A strategy whose whole plan of ``total`` positions is fixed in advance."""

    name = "planned"

    def __init__(self, plan: np.ndarray) -> None:
        self.plan = plan

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        start = len(state.positions_unit)
        if start + count > len(self.plan):
            raise ParameterError(f"{self.name}: the plan has {len(self.plan)} positions, asked for "
                                 f"{start + count}")
        return self.plan[start:start + count]


class RandomScan(_PlannedStrategy):
    """Uniformly random positions (without replacement once snapped to a recording)."""

    name = "random"

    def __init__(self, total: int, seed: int = 0) -> None:
        super().__init__(np.random.default_rng(seed).random((total, 2)))


class HaltonScan:
    """The scrambled Halton sequence, continued step after step (the paper's first sub-sequence)."""

    name = "halton"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        return halton_unit(count, self.seed, skip=len(state.positions_unit))


class SparseRasterScan(_PlannedStrategy):
    """The most uniform grid of ``total`` positions, acquired row by row."""

    name = "raster"

    def __init__(self, total: int) -> None:
        super().__init__(sparse_raster_unit(total))


class FullRasterScan(_PlannedStrategy):
    """Every position of an ny × nx raster."""

    name = "full"

    def __init__(self, shape: tuple[int, int]) -> None:
        ny, nx = shape
        y = np.linspace(0, 1, ny) if ny > 1 else np.zeros(1)
        x = np.linspace(0, 1, nx) if nx > 1 else np.zeros(1)
        yy, xx = np.meshgrid(y, x, indexing="ij")
        super().__init__(np.stack([yy.ravel(), xx.ravel()], axis=1))
