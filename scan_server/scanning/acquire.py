"""Playing a strategy on a recording: each proposal is snapped to the nearest unused recorded
pattern (``VirtualMicroscope``), step after step, without reconstructing (strategies that need a
reconstruction are played by ``rollout``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ..physics.detector_signals import DarkFieldMeter
from .registry import StrategyContext, build_strategy
from .state import ScanState, ScanStrategy, needs_dark_field
from .virtual_microscope import VirtualMicroscope


def run_strategy(strategy: ScanStrategy, microscope: VirtualMicroscope, total: int, per_step: int = 50,
                 patterns: Any = None, nominal_radius_px: float | None = None) -> np.ndarray:
    """Acquire ``total`` positions in sub-sequences of ``per_step``; returns the recording
    indices used, in acquisition order. A strategy that reads the dark field, given the
    recording's ``patterns`` (N, M, M) and the metadata's disc radius, sees the acquired
    patterns' calibrated dark-field fractions, metered step by step as a session of the
    service meters them."""
    meter = DarkFieldMeter(nominal_radius_px) if needs_dark_field(strategy) and patterns is not None \
        and nominal_radius_px is not None else None
    indices: list[np.ndarray] = []
    acquired = np.empty((0, 2))
    step = 0
    while len(acquired) < total:
        count = min(per_step, total - len(acquired))
        seen = meter.fractions if meter is not None and indices else None
        state = ScanState(acquired, None, step, dark_field_fraction=seen,
                          extent_angstrom=microscope.field.extent_angstrom)
        proposal = strategy.next_positions(state, count)
        chosen = microscope.nearest_unused(microscope.to_angstrom(proposal))
        indices.append(chosen)
        if meter is not None:
            meter.add(np.stack([np.asarray(patterns[int(i)]) for i in chosen]), microscope.recorded[chosen])
        acquired = np.concatenate([acquired, microscope.to_unit(microscope.recorded[chosen])])
        step += 1
    return np.concatenate(indices)


def select_positions(strategy: str, n: int, recorded_angstrom: np.ndarray, seed: int = 0,
                     scan_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Indices of n distinct recorded positions chosen by a strategy that needs no
    reconstruction (a baseline), in acquisition order."""
    total = len(recorded_angstrom)
    if not 0 < n <= total:
        raise ParameterError(f"the number of positions must be in 1…{total}, got {n}")
    microscope = VirtualMicroscope(recorded_angstrom)
    return run_strategy(build_strategy(strategy, StrategyContext(n, seed, scan_shape)), microscope, n)
