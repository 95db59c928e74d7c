"""What a scan strategy sees and what it must answer (the contract every strategy keeps).

A ``ScanStrategy`` proposes the next sub-sequence of positions in normalised [0, 1]²
coordinates of the field of view, given what has been acquired so far (a ``ScanState``).
The baselines ignore the state; the learned policy uses it. The same interface serves a
live microscope (continuous positions) and a recording (through the
``VirtualMicroscope``, which snaps to the nearest unused recorded pattern).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ScanState:
    """What a strategy may look at: the positions acquired so far (P, 2) in [0, 1]², the
    current reconstruction (H, W) complex or ``None``, the step number, and the pixel
    region of the reconstruction that is the scanned field of view."""

    positions_unit: np.ndarray
    reconstruction: np.ndarray | None
    step: int
    region: tuple[slice, slice] | None = None


class ScanStrategy(Protocol):
    name: str

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        """The next ``count`` positions, (count, 2) (y, x) in [0, 1]²."""
        ...
