"""Reference strategies that know the answer: they bound what a strategy could gain.

They read the full-data reconstruction (given to them as a look-up), so they exist only
in evaluations (never in the service) and are labelled as references in every report.

``oracle-material``: the Halton scan of the same seed, with every point the full-data
reconstruction shows as vacuum skipped (the evaluation passes
``ScoreReference.material_at``). On a homogeneous field it is the Halton scan; on a field
with vacuum it spends the whole dose on material, which bounds what skipping vacuum can gain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ParameterError
from .baselines import halton_unit
from .state import ScanState

#: Halton points drawn per look-up; give up after this many per requested position
_CHUNK = 512
_MAX_CANDIDATES_PER_POSITION = 200


class OracleMaterialScan:
    """The Halton sequence of ``seed`` without the points where ``is_material`` (unit (n, 2)
    → (n,) bool) is false, continued step after step."""

    name = "oracle-material"

    def __init__(self, is_material: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> None:
        self.is_material = is_material
        self.seed = seed
        self.cursor = 0  # Halton points consumed so far

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        taken: list[np.ndarray] = []
        needed, limit = count, self.cursor + _MAX_CANDIDATES_PER_POSITION * max(count, 1)
        while needed:
            if self.cursor >= limit:
                raise ParameterError(f"{self.name}: the reference shows no material where the Halton "
                                     f"sequence looks ({limit} points)")
            candidates = halton_unit(_CHUNK, self.seed, skip=self.cursor)
            kept = np.flatnonzero(self.is_material(candidates))[:needed]
            taken.append(candidates[kept])
            needed -= len(kept)
            self.cursor += int(kept[-1]) + 1 if needed == 0 else _CHUNK
        return np.concatenate(taken)

