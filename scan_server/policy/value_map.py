"""The value-map strategy (``value-map``): a small fully convolutional network maps the
evidence of a scan (``scanning.evidence``: the acquired patterns' dark-field fraction,
interpolated, and the coverage) to the value of measuring at each place of the field of
view, trained supervised on simulations with ground truth (``training/value_map.py``: the
local error of partial reconstructions over the material, spread over a probe-sized
neighbourhood). In the spirit of SLADS / DLADS; it needs no reconstruction at decision time.

The first step is the Halton sequence; every later step scores the next unused Halton
points (the candidates, ``pool_factor`` per requested position) by the map and picks them
greedily with a coverage term and a minimum spacing, or continues the Halton sequence
where the evidence shows no vacuum (``scanning.selection``: do no harm on homogeneous films).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..errors import ParameterError
from ..scanning.baselines import halton_unit
from ..scanning.evidence import CHANNELS, EVIDENCE_VERSION, EvidenceMaps, evidence_maps, sample_map
from ..scanning.registry import VALUE_MAP
from ..scanning.selection import SelectionSettings, select
from ..scanning.state import ScanState


@dataclass(frozen=True)
class ValueMapSettings:
    """map_px: the evidence and value maps' size over the field of view. channels: the
    network's width. dilations: one 3 × 3 convolution per entry, with that dilation (the
    receptive field grows to about 2·Σ dilations + 1 px). selection: how positions are
    picked from the map (``scanning.selection.SelectionSettings``). evidence: the version of
    the evidence the network reads (``scanning.evidence.EVIDENCE_VERSION``; another is refused)."""

    map_px: int = 64
    channels: int = 16
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    selection: SelectionSettings = SelectionSettings()
    evidence: int = EVIDENCE_VERSION

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ValueMapSettings:
        evidence = int(data.get("evidence", 1))
        if evidence != EVIDENCE_VERSION:
            raise ParameterError(f"this model's value map reads evidence version {evidence} (release 2: the dark "
                                 f"field from the metadata's disc, in decades); this code computes version "
                                 f"{EVIDENCE_VERSION} (calibrated from the patterns, on the session's own scale): "
                                 "serve a model trained for it (models/mos2-cpu-v3) or retrain the value map "
                                 "(`scan-server train value-map` on the run folder replaces it)")
        return cls(map_px=int(data["map_px"]), channels=int(data["channels"]),
                   dilations=tuple(int(d) for d in data["dilations"]),
                   selection=SelectionSettings(**data.get("selection", {})), evidence=evidence)


class ValueMapNet(nn.Module):
    """Evidence (B, C, m, m) → value (B, m, m) ≥ 0 (the expected local error over the
    material, in units of its mean over the field)."""

    def __init__(self, settings: ValueMapSettings) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = len(CHANNELS)
        for dilation in settings.dilations:
            layers += [nn.Conv2d(width, settings.channels, 3, padding=dilation, dilation=dilation), nn.ReLU()]
            width = settings.channels
        layers.append(nn.Conv2d(width, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, evidence: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.body(evidence))[:, 0]


#: the evidence map the do-no-harm test reads: the dark field on the session's scale (0 material, −1 vacuum)
MATERIAL_EVIDENCE = "dark_field_relative_3A"


class ValueMapScan:
    """One session's value-map scan (``ScanStrategy``; ``StatefulStrategy``: the Halton
    indices it took)."""

    name = VALUE_MAP
    needs_reconstruction = False
    needs_dark_field = True

    def __init__(self, network: ValueMapNet, settings: ValueMapSettings, seed: int = 0) -> None:
        self.network = network
        self.settings = settings
        self.seed = seed
        self.taken: list[int] = []
        self.last_value_map: np.ndarray | None = None  # (m, m), for figures and the live view

    def policy_state(self) -> np.ndarray | None:
        return np.asarray(self.taken, dtype=np.float64) if self.taken else None

    def restore_policy_state(self, state: np.ndarray | None) -> None:
        self.taken = [] if state is None else [int(i) for i in np.asarray(state).reshape(-1)]

    def evidence(self, state: ScanState) -> EvidenceMaps:
        """The evidence maps of the scan so far."""
        if state.dark_field_fraction is None or state.extent_angstrom is None:
            raise ParameterError("the value-map strategy needs the patterns' dark-field fractions and the "
                                 "field of view's extent")
        return evidence_maps(state.positions_unit, state.dark_field_fraction, state.extent_angstrom,
                             self.settings.map_px)

    def value_map(self, evidence: EvidenceMaps) -> np.ndarray:
        """The value map (m, m) of the evidence."""
        device = next(self.network.parameters()).device
        with torch.no_grad():
            value = self.network(torch.as_tensor(evidence.maps, device=device)[None])[0]
        return value.cpu().numpy().astype(np.float64)

    def next_positions(self, state: ScanState, count: int) -> np.ndarray:
        if len(state.positions_unit) == 0:
            self.taken = list(range(count))
            return halton_unit(count, self.seed)
        cursor = max(self.taken) + 1 if self.taken else 0
        pool_end = cursor + self.settings.selection.pool_factor * count
        taken = set(self.taken)
        indices = np.asarray([i for i in range(pool_end) if i not in taken], dtype=np.int64)
        candidates = halton_unit(pool_end, self.seed)[indices]
        picked = self._choose(state, candidates, count)
        self.taken += [int(i) for i in indices[picked]]
        return candidates[picked]

    def teacher_positions(self, state: ScanState, count: int) -> np.ndarray:
        """The decision at a state this strategy did not make itself (a student's, for DAgger),
        without the session's memory: the Halton points already used are those within the
        minimum spacing of an acquired position."""
        if len(state.positions_unit) == 0:
            return halton_unit(count, self.seed)
        pool = halton_unit(len(state.positions_unit) + self.settings.selection.pool_factor * count, self.seed)
        scale = np.asarray(state.extent_angstrom, dtype=np.float64)
        distance = cKDTree(state.positions_unit * scale).query(pool * scale)[0]
        unused = pool[distance > self.settings.selection.min_spacing_angstrom]
        candidates = unused if len(unused) >= count else pool
        return candidates[self._choose(state, candidates, count)]

    def _choose(self, state: ScanState, candidates: np.ndarray, count: int) -> np.ndarray:
        """Indices of ``count`` of the candidates (K, 2) in [0, 1]² (``scanning.selection``)."""
        evidence = self.evidence(state)
        self.last_value_map = self.value_map(evidence)
        values = sample_map(self.last_value_map, candidates)
        material = sample_map(evidence.maps[CHANNELS.index(MATERIAL_EVIDENCE)], candidates)
        picked, _ = select(candidates, values, material, evidence.levels.vacuum_seen, state.positions_unit, count,
                           state.extent_angstrom, self.settings.selection)
        return picked
