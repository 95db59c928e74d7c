"""A model folder: ``model.safetensors`` (weights) + ``model_card.json`` (what they are).

The policy owns the format; training writes folders through ``ModelFolder.save``, the
service, evaluation and export read them through ``ModelFolder.load``, which parses the
card once into a frozen ``ModelCard``. Nothing is pickled and no code runs on load; when
the card records the weights' sha256, loading checks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import ParameterError
from ..scanning.evidence import EVIDENCE_VERSION
from .model import AdaptiveModel, ModelSettings

MODEL_FILE = "model.safetensors"
CARD_FILE = "model_card.json"


@dataclass(frozen=True)
class TrainingGeometry:
    """The acquisition geometry of the model's training data (what it has seen)."""

    detector_px: int
    detector_sampling_inv_angstrom: float
    energy_ev: float
    semiangle_mrad: float
    field_of_view_angstrom: tuple[float, float] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TrainingGeometry:
        fov = data.get("field_of_view_angstrom")
        return cls(int(data["detector_px"]), float(data["detector_sampling_inv_angstrom"]), float(data["energy_ev"]),
                   float(data["semiangle_mrad"]), tuple(float(v) for v in fov) if fov else None)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {"detector_px": self.detector_px, "detector_sampling_inv_angstrom": self.detector_sampling_inv_angstrom,
                "energy_ev": self.energy_ev, "semiangle_mrad": self.semiangle_mrad,
                "field_of_view_angstrom": list(self.field_of_view_angstrom) if self.field_of_view_angstrom else None}


@dataclass(frozen=True)
class ModelCard:
    """A model card, parsed once: the model's name, its settings, the geometry of its
    training data (``None`` when unrecorded), the weights' sha256 (``None`` in a run folder)
    and the whole JSON document (``document``: training stages, data, evaluations)."""

    name: str | None
    settings: ModelSettings
    training_geometry: TrainingGeometry | None
    weights_sha256: str | None
    document: Mapping[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, document: Mapping[str, Any], source: str) -> ModelCard:
        try:
            geometry = (document.get("data") or {}).get("geometry")
            return cls(document.get("name"), ModelSettings.from_dict(document["settings"]),
                       TrainingGeometry.parse(geometry) if geometry else None, document.get("weights_sha256"),
                       dict(document))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"{source}: not a valid model card ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class ModelFolder:
    """A folder holding a model (``models/NAME`` or a training run)."""

    path: Path

    @property
    def weights(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def card_path(self) -> Path:
        return self.path / CARD_FILE

    def exists(self) -> bool:
        return self.weights.is_file() and self.card_path.is_file()

    def weights_sha256(self) -> str:
        return hashlib.sha256(self.weights.read_bytes()).hexdigest()

    def read_card(self, drop_stale_value_map: bool = False) -> ModelCard:
        """The parsed card; with ``drop_stale_value_map``, a value map that reads another
        evidence version than this code computes is left out (the rest of the model stands)."""
        if not self.exists():
            raise ParameterError(f"{self.path}: not a model folder (needs {MODEL_FILE} and {CARD_FILE})")
        try:
            document = json.loads(self.card_path.read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"{self.card_path}: unreadable model card ({exc})") from exc
        value_map = (document.get("settings") or {}).get("value_map")
        if drop_stale_value_map and value_map and int(value_map.get("evidence", 1)) != EVIDENCE_VERSION:
            document = {**document, "settings": {**document["settings"], "value_map": None}}
        return ModelCard.parse(document, str(self.card_path))

    def load(self, device: torch.device | None = None, verify: bool = True,
             drop_stale_value_map: bool = False) -> tuple[AdaptiveModel, ModelCard]:
        """The model (in eval mode, on ``device``) and its card; with ``verify``, weights whose
        sha256 differs from the card's are refused; ``drop_stale_value_map``: see ``read_card``."""
        card = self.read_card(drop_stale_value_map)
        if verify and card.weights_sha256 and card.weights_sha256 != self.weights_sha256():
            raise ParameterError(f"{self.path}: the weights do not match the sha256 in the model card")
        model = AdaptiveModel(card.settings)
        weights = load_file(str(self.weights))
        if card.settings.value_map is None:
            weights = {k: v for k, v in weights.items() if not k.startswith("value_map.")}
        model.load_state_dict(weights)
        return model.to(device or torch.device("cpu")), card

    def save(self, model: AdaptiveModel, document: Mapping[str, Any]) -> None:
        """Weights (safetensors) and the card (JSON) of the latest stage."""
        self.path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(self.weights))
        self.card_path.write_text(json.dumps(dict(document), indent=2) + "\n")
