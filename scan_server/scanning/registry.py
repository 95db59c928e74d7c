"""Every scan strategy by name: the one place a strategy is registered.

An entry says how to build the strategy from a ``StrategyContext`` and what it is:
``sequential`` (its scan of n positions is the first n of a longer one, so a dose–quality
curve is scored on prefixes of one run), ``served`` (offered by the scan service; the
service's schema takes its names from here), ``reference`` (knows the answer: evaluation
only, labelled as a reference, never served) and ``needs_model`` (built from the served
or evaluated model). Adding a strategy: one module with its class, one entry below.

The learned strategies (``adaptive``, ``value-map``) are built by the caller that holds the
model (the context's ``learned`` factory, by name), so this layer never imports the policy:
arrows run downwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from .baselines import FullRasterScan, HaltonScan, RandomScan, SparseRasterScan
from .oracle import OracleMaterialScan
from .state import ScanStrategy


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy is built from: the positions of the whole scan, the seed, the
    recorded raster's shape (for ``full``), a factory of the learned strategies (name, seed →
    strategy of the served or evaluated model) and, for a reference, where the answer
    shows material ((n, 2) unit positions → (n,) bool)."""

    total_positions: int
    seed: int = 0
    scan_shape: tuple[int, int] | None = None
    learned: Callable[[str, int], ScanStrategy] | None = None
    material_at_unit: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    build: Callable[[StrategyContext], ScanStrategy]
    description: str
    sequential: bool
    served: bool = True
    reference: bool = False
    needs_model: bool = False


#: the learned strategies' names (their classes live in the policy, above this layer); every
#: other name is its class's ``name``
ADAPTIVE = "adaptive"
VALUE_MAP = "value-map"
HALTON = HaltonScan.name
ORACLE_MATERIAL = OracleMaterialScan.name


def _learned(name: str) -> Callable[[StrategyContext], ScanStrategy]:
    def build(context: StrategyContext) -> ScanStrategy:
        if context.learned is None:
            raise ParameterError(f"the {name} strategy needs a model")
        return context.learned(name, context.seed)

    return build


def _full(context: StrategyContext) -> ScanStrategy:
    if context.scan_shape is None:
        raise ParameterError("a full raster needs the scan shape")
    return FullRasterScan(context.scan_shape)


def _oracle_material(context: StrategyContext) -> ScanStrategy:
    if context.material_at_unit is None:
        raise ParameterError("oracle-material needs the full-data reconstruction's material mask")
    return OracleMaterialScan(context.material_at_unit, context.seed)


STRATEGIES: dict[str, StrategyEntry] = {entry.name: entry for entry in (
    StrategyEntry(VALUE_MAP, _learned(VALUE_MAP), "the model's value map of the patterns' evidence: Halton "
                  "points picked greedily by value and coverage, the Halton continuation where the map is flat",
                  sequential=True, needs_model=True),
    StrategyEntry(ADAPTIVE, _learned(ADAPTIVE), "the learned GRU policy (Halton start, then the model's positions)",
                  sequential=True, needs_model=True),
    StrategyEntry(HALTON, lambda c: HaltonScan(c.seed), "the scrambled Halton sequence", sequential=True),
    StrategyEntry(RandomScan.name, lambda c: RandomScan(c.total_positions, c.seed), "uniformly random positions",
                  sequential=True),
    StrategyEntry(SparseRasterScan.name, lambda c: SparseRasterScan(c.total_positions),
                  "the most uniform grid of n positions", sequential=False),
    StrategyEntry(FullRasterScan.name, _full, "every position of the recorded raster", sequential=False, served=False),
    StrategyEntry(ORACLE_MATERIAL, _oracle_material,
                  "reference: the Halton scan without the points the full-data reconstruction shows as vacuum",
                  sequential=True, served=False, reference=True),
)}

#: the strategies the scan service offers, in the order reports show them
SERVED_STRATEGIES = tuple(name for name, entry in STRATEGIES.items() if entry.served)
#: reference strategies (they know the answer): evaluation only
REFERENCE_STRATEGIES = tuple(name for name, entry in STRATEGIES.items() if entry.reference)
#: every strategy an evaluation may score, in the order reports show them: served ones and references
EVALUATED_STRATEGIES = tuple(name for name, entry in STRATEGIES.items() if entry.served or entry.reference)
#: strategies that need neither a model nor the answer (the baselines)
BASELINE_STRATEGIES = tuple(name for name, entry in STRATEGIES.items()
                            if entry.served and not entry.needs_model and not entry.reference)


def strategy_entry(name: str) -> StrategyEntry:
    if name not in STRATEGIES:
        raise ParameterError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def build_strategy(name: str, context: StrategyContext) -> ScanStrategy:
    """A new strategy of that name (a clear error for an unknown name or a missing input)."""
    return strategy_entry(name).build(context)
