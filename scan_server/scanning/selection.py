"""Choosing the next positions from candidates with values: greedy, spaced, covering.

A value map alone clusters the positions (a greedy max-error oracle scores far below a
Halton scan on films: docs/adaptive.md), so every pick is scored by its value times a
coverage term that is small near what is already acquired or picked:

    score(c) = v(c) · (1 − exp(−(d(c)/ℓ)²)),

d(c) the distance (Å) from candidate c to the nearest acquired or already picked position,
ℓ the spacing a uniform scan would have once this step is acquired (√(area / (P + n))).
Candidates closer than ``min_spacing_angstrom`` are never picked while others remain; ties
go to the earlier candidate (candidates come in Halton order).

Do no harm: when the evidence of material is flat — the session has no vacuum level
(``scanning.evidence.material_levels``: a film), or hardly any candidate lies more than
``vacuum_level`` of the way from the session's material level to its vacuum level — the
step takes the first ``count`` candidates in their order, i.e. the Halton continuation. The test looks at the measured evidence, not at
the learned value: on a film the value map still varies with coverage, and a scan that
follows it there can only match the Halton sequence, never beat it by much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import ParameterError


@dataclass(frozen=True)
class SelectionSettings:
    """min_spacing_angstrom: no two positions closer than this while candidates allow.
    vacuum_level, flat_fraction: the evidence is flat when the session has no vacuum level or
    fewer than ``flat_fraction`` of the candidates lie ``vacuum_level`` or more of the way from
    its material level (0) to its vacuum level (−1) (halfway by default: nearer vacuum than
    material). pool_factor: candidates considered per requested position."""

    min_spacing_angstrom: float = 0.6
    vacuum_level: float = 0.5
    flat_fraction: float = 0.1
    pool_factor: int = 4

    def __post_init__(self) -> None:
        if self.min_spacing_angstrom < 0 or not 0 < self.vacuum_level <= 1 or not 0 <= self.flat_fraction < 1 \
                or self.pool_factor < 1:
            raise ParameterError("selection settings: min spacing ≥ 0 Å, 0 < vacuum level ≤ 1, "
                                 "0 ≤ flat fraction < 1 and pool factor ≥ 1 are required")


def evidence_is_flat(relative_dark_field: np.ndarray, vacuum_seen: bool, settings: SelectionSettings) -> bool:
    """Whether no vacuum is in sight: the session has no vacuum level, or the candidates'
    dark-field evidence on the session's scale (K,) (0 material, −1 vacuum;
    ``scanning.evidence``) seldom reaches ``vacuum_level`` of the way to vacuum."""
    if not vacuum_seen:
        return True
    relative = np.asarray(relative_dark_field, dtype=np.float64)
    return float(np.mean(relative <= -settings.vacuum_level)) < settings.flat_fraction


def greedy_select(candidates_unit: np.ndarray, values: np.ndarray, acquired_unit: np.ndarray, count: int,
                  extent_angstrom: tuple[float, float], min_spacing_angstrom: float) -> np.ndarray:
    """Indices of ``count`` distinct candidates (K, 2) in [0, 1]² picked greedily by value
    (K,) ≥ 0 times the coverage term, given the acquired positions (P, 2) in [0, 1]²."""
    candidates = np.asarray(candidates_unit, dtype=np.float64).reshape(-1, 2)
    if not 0 <= count <= len(candidates):
        raise ParameterError(f"cannot pick {count} of {len(candidates)} candidates")
    scale = np.asarray(extent_angstrom, dtype=np.float64)
    points = candidates * scale
    acquired = np.asarray(acquired_unit, dtype=np.float64).reshape(-1, 2) * scale
    spacing = float(np.sqrt(np.prod(scale) / (len(acquired) + count)))
    distance = cKDTree(acquired).query(points)[0] if len(acquired) else np.full(len(points), np.inf)
    value = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    available = np.ones(len(points), dtype=bool)
    chosen: list[int] = []
    for _ in range(count):
        spaced = available & (distance >= min_spacing_angstrom)
        allowed = spaced if spaced.any() else available
        score = np.where(allowed, value * -np.expm1(-(distance / spacing) ** 2), -np.inf)
        if not np.isfinite(score).any() or score[allowed].max() <= 0:  # no value left: the nearest-free rule
            score = np.where(allowed, distance, -np.inf)
        pick = int(np.argmax(score))
        chosen.append(pick)
        available[pick] = False
        distance = np.minimum(distance, np.linalg.norm(points - points[pick], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def select(candidates_unit: np.ndarray, values: np.ndarray, relative_dark_field: np.ndarray, vacuum_seen: bool,
           acquired_unit: np.ndarray, count: int, extent_angstrom: tuple[float, float],
           settings: SelectionSettings) -> tuple[np.ndarray, bool]:
    """The indices of the ``count`` candidates to acquire (values (K,) and evidence of material
    (K,) at the candidates, whether the session has a vacuum level) and whether the evidence
    was flat (then the first ``count`` candidates, in order)."""
    if evidence_is_flat(relative_dark_field, vacuum_seen, settings):
        return np.arange(count, dtype=np.int64), True
    return greedy_select(candidates_unit, values, acquired_unit, count, extent_angstrom,
                         settings.min_spacing_angstrom), False
