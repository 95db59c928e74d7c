"""A virtual microscope over a recording: the training environment, the replay client
and the evaluation all acquire through it.

Asked for positions anywhere in the scan's field of view, it returns the recorded
patterns at the nearest recorded positions not used yet (a pattern is never returned
twice: that would be dose never spent) and the positions it actually used. Requests
outside the field of view are clipped to its edge first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..contracts import Acquisition
from ..errors import ParameterError
from .field_of_view import FieldOfView


@dataclass(frozen=True)
class Exposure:
    """What one acquisition returned: frames (n, M, M), the positions actually visited
    (n, 2) Å and their indices in the recording (n,)."""

    frames: np.ndarray
    positions_angstrom: np.ndarray
    indices: np.ndarray


class VirtualMicroscope:
    """Replays a recording; positions are (y, x) in Å in the scan frame."""

    def __init__(self, positions_angstrom: np.ndarray, frames: Any = None) -> None:
        """positions_angstrom: (N, 2) recorded positions; frames: the (lazy) (N, M, M)
        patterns, or ``None`` to only choose positions (``nearest_unused``)."""
        self.frames = frames
        self.recorded = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        if len(self.recorded) == 0:
            raise ParameterError("a virtual microscope needs at least one recorded position")
        self.tree = cKDTree(self.recorded)
        self.field = FieldOfView.of_positions(self.recorded)
        self.used = np.zeros(len(self.recorded), dtype=bool)

    @classmethod
    def over(cls, acquisition: Acquisition) -> VirtualMicroscope:
        return cls(acquisition.positions_angstrom, acquisition.frames)

    @property
    def remaining(self) -> int:
        return int((~self.used).sum())

    def reset(self) -> None:
        self.used[:] = False

    def to_angstrom(self, unit_positions: np.ndarray) -> np.ndarray:
        """Normalised [0, 1]² field-of-view coordinates → Å in the scan frame."""
        return self.field.to_angstrom(unit_positions)

    def to_unit(self, positions_angstrom: np.ndarray) -> np.ndarray:
        return self.field.to_unit(positions_angstrom)

    def nearest_unused(self, positions_angstrom: np.ndarray) -> np.ndarray:
        """Indices of the nearest unused recorded positions, claimed in request order."""
        low, high = self.field.corners_angstrom
        targets = np.clip(np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2), low, high)
        if len(targets) > self.remaining:
            raise ParameterError(f"asked for {len(targets)} positions but only {self.remaining} of the "
                                 f"recording's {len(self.recorded)} patterns are unused")
        chosen = np.empty(len(targets), dtype=np.int64)
        for i, target in enumerate(targets):
            k = 8
            while True:
                _, neighbours = self.tree.query(target, k=min(k, len(self.recorded)))
                free = np.atleast_1d(neighbours)[~self.used[np.atleast_1d(neighbours)]]
                if free.size or k >= len(self.recorded):
                    break
                k *= 4
            chosen[i] = free[0]
            self.used[free[0]] = True
        return chosen

    def acquire(self, positions_angstrom: np.ndarray) -> Exposure:
        """Patterns at the nearest unused recorded positions (read lazily from disk)."""
        if self.frames is None:
            raise ParameterError("this virtual microscope has positions but no frames")
        indices = self.nearest_unused(positions_angstrom)
        return Exposure(frames=np.asarray(self.frames[indices]),
                        positions_angstrom=self.recorded[indices], indices=indices)
