"""What a scan strategy sees and what it must answer (the contract every strategy keeps).

A ``ScanStrategy`` proposes the next sub-sequence of positions in normalised [0, 1]²
coordinates of the field of view, given what has been acquired so far (a ``ScanState``).
The baselines ignore the state; the learned policy uses it. The same interface serves a
live microscope (continuous positions) and a recording (through the
``VirtualMicroscope``, which snaps to the nearest unused recorded pattern).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ScanState:
    """What a strategy may look at: the positions acquired so far (P, 2) in [0, 1]², the
    current reconstruction (H, W) complex or ``None``, the step number, the pixel region of
    the reconstruction that is the scanned field of view, the acquired patterns' calibrated
    dark-field fractions (P,) (``physics.detector_signals``; NaN where a pattern is no
    evidence: the beam blanked, or no calibration yet) and the field of view's extent (y, x) in Å."""

    positions_unit: np.ndarray
    reconstruction: np.ndarray | None
    step: int
    region: tuple[slice, slice] | None = None
    dark_field_fraction: np.ndarray | None = None
    extent_angstrom: tuple[float, float] | None = None


class ScanStrategy(Protocol):
    name: str

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        """The next ``count`` positions, (count, 2) (y, x) in [0, 1]²."""
        ...


def needs_reconstruction(strategy: ScanStrategy) -> bool:
    """Whether the strategy looks at ``ScanState.reconstruction`` (then the caller makes one
    before each decision; the others decide without)."""
    return bool(getattr(strategy, "needs_reconstruction", False))


def needs_dark_field(strategy: ScanStrategy) -> bool:
    """Whether the strategy looks at ``ScanState.dark_field_fraction`` (then the caller meters
    the patterns before each decision; the others decide without)."""
    return bool(getattr(strategy, "needs_dark_field", False))


@runtime_checkable
class StatefulStrategy(Protocol):
    """A strategy whose decisions depend on more than the acquired positions (a GRU's hidden
    state, the Halton points a value map skipped): the service persists that state after each
    decision and restores it when a session resumes."""

    def policy_state(self) -> np.ndarray | None: ...

    def restore_policy_state(self, state: np.ndarray | None) -> None: ...
