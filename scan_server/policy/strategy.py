"""The adaptive strategy behind the baselines' ``ScanStrategy`` interface (one session).

The first sub-sequence follows the scrambled Halton sequence; every later one is the
policy's means given the reconstruction so far (``state.reconstruction`` over
``state.region``) and the last sub-sequence's positions, the GRU's hidden state carried
from step to step. Its decisions equal the batched rollout's (``rollout.rollout``)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from ..scanning.baselines import halton_unit
from ..scanning.registry import ADAPTIVE, VALUE_MAP
from ..scanning.state import ScanState, ScanStrategy
from .model import AdaptiveModel
from .step import encode_and_decide
from .value_map import ValueMapScan


def learned_strategy(model: AdaptiveModel, name: str, seed: int | None = None) -> ScanStrategy:
    """A new session of one of the model's learned strategies (``model.strategies``). ``seed``:
    the value map's Halton sequence — the session's, as the Halton baseline's, so that where the
    evidence is flat the value map *is* the Halton scan of that seed (default: the model's). The
    adaptive policy always starts with its model's sequence (the one its pretraining imitated)."""
    if name == ADAPTIVE:
        return AdaptiveScan(model)
    seed = model.settings.policy.halton_seed if seed is None else seed
    if name == VALUE_MAP and model.value_map is not None and model.settings.value_map is not None:
        return ValueMapScan(model.value_map, model.settings.value_map, seed)
    raise ParameterError(f"this model serves {', '.join(model.strategies)}, not {name!r} "
                         f"(a value map comes with v2 models: `scan-server train value-map`)")


class AdaptiveScan:
    name = ADAPTIVE
    needs_reconstruction = True

    def __init__(self, model: AdaptiveModel, seed: int | None = None) -> None:
        self.model = model
        self.seed = model.settings.policy.halton_seed if seed is None else seed
        self.hidden: torch.Tensor | None = None

    def policy_state(self) -> np.ndarray | None:
        """The GRU's hidden state after the last decision (to persist), or ``None`` before one."""
        return None if self.hidden is None else self.hidden.cpu().numpy()

    def restore_policy_state(self, hidden: np.ndarray | None) -> None:
        """Continue from a persisted hidden state (a resumed session)."""
        device = next(self.model.parameters()).device
        self.hidden = None if hidden is None else torch.as_tensor(hidden, device=device)

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        n = self.model.settings.policy.subsequence
        if count > n:
            raise ParameterError(f"the adaptive model proposes {n} positions per step, not {count}")
        if len(state.positions_unit) == 0:
            self.hidden = None
            return halton_unit(count, self.seed)
        if state.reconstruction is None or state.region is None:
            raise ParameterError("the adaptive strategy needs the current reconstruction and its region")
        step = encode_and_decide(self.model, torch.as_tensor(state.reconstruction)[None], state.region,
                                 torch.as_tensor(state.positions_unit[-n:], dtype=torch.float32)[None], self.hidden)
        self.hidden = step.hidden
        # the GRU proposes a whole sub-sequence; a last step shorter than it keeps its first ``count``
        return step.means[0, :count].cpu().numpy().astype(np.float64)
