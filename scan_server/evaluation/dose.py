"""Dose–quality curves: how many positions a strategy needs to reach a quality.

A curve is a score at increasing position counts. The positions a strategy needs to
reach a target score are read at the first crossing of its running maximum (a score
that dips after reaching the target does not un-reach it), interpolated linearly between
the two counts around the crossing. A target reached at the first count, or never
reached, can only be bounded: the first count (an upper bound) or the last (a lower
bound) is used and the case is counted in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

REACHED, AT_FIRST_COUNT, NOT_REACHED = "reached", "at_first_count", "not_reached"


@dataclass(frozen=True)
class Crossing:
    """Positions needed to reach a target and how it was found (one of the three states above)."""

    positions: float
    status: str


def positions_to_reach(counts: Sequence[int], scores: Sequence[float], target: float) -> Crossing:
    """Positions at which the curve (``scores`` at increasing ``counts``) first reaches ``target``."""
    x = np.asarray(counts, dtype=np.float64)
    y = np.maximum.accumulate(np.asarray(scores, dtype=np.float64))
    if len(x) != len(y) or len(x) < 2 or np.any(np.diff(x) <= 0):
        raise ParameterError("a dose–quality curve needs at least two increasing counts, one score each")
    if y[0] >= target:
        return Crossing(float(x[0]), AT_FIRST_COUNT)
    if y[-1] < target:
        return Crossing(float(x[-1]), NOT_REACHED)
    above = int(np.argmax(y >= target))
    fraction = (target - y[above - 1]) / (y[above] - y[above - 1])
    return Crossing(float(x[above - 1] + fraction * (x[above] - x[above - 1])), REACHED)


def score_at(counts: Sequence[int], scores: Sequence[float], positions: float) -> float:
    """The curve's score at ``positions`` (linear interpolation; must lie within the counts)."""
    x = np.asarray(counts, dtype=np.float64)
    if not x[0] <= positions <= x[-1]:
        raise ParameterError(f"{positions} positions lie outside the curve's counts {x[0]:.0f}…{x[-1]:.0f}")
    return float(np.interp(positions, x, np.asarray(scores, dtype=np.float64)))


def bootstrap_mean_interval(values: Sequence[float], seed: int = 0, samples: int = 2000) -> list[float]:
    """95 % percentile-bootstrap interval of the mean of ``values`` (resampled together, so a
    per-recording difference or ratio keeps its pairing)."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) < 2:
        return [float(data.mean()), float(data.mean())]
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (samples, len(data)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def dose_ratio(counts: Sequence[int], curves: Sequence[Sequence[float]], halton_curves: Sequence[Sequence[float]],
               reference_positions: int) -> dict:
    """Per recording, the positions a strategy needs to reach Halton's score at
    ``reference_positions``, divided by ``reference_positions``; their mean with a bootstrap
    95 % interval, and how many were bounded rather than reached."""
    ratios, states = [], []
    for curve, halton in zip(curves, halton_curves):
        target = score_at(counts, halton, reference_positions)
        crossing = positions_to_reach(counts, curve, target)
        ratios.append(crossing.positions / reference_positions)
        states.append(crossing.status)
    return {"mean": float(np.mean(ratios)), "ci95": bootstrap_mean_interval(ratios),
            "per_recording": ratios, "status": states,
            "not_reached": states.count(NOT_REACHED), "at_first_count": states.count(AT_FIRST_COUNT)}
