"""Shipped models: ``models/NAME/model.safetensors`` + ``model_card.json``.

Loading reads safetensors only (no code runs on load) and checks the weights' sha256
against the card when the card records it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from ..errors import ParameterError
from ..training.run import CARD_FILE, MODEL_FILE, load_model
from .model import AdaptiveModel


def weights_sha256(folder: Path) -> str:
    return hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()


def load_model_folder(folder: Path, device: torch.device | None = None) -> AdaptiveModel:
    if not (folder / MODEL_FILE).is_file() or not (folder / CARD_FILE).is_file():
        raise ParameterError(f"{folder}: not a model folder (needs {MODEL_FILE} and {CARD_FILE})")
    card = json.loads((folder / CARD_FILE).read_text())
    expected = card.get("weights_sha256")
    if expected and expected != weights_sha256(folder):
        raise ParameterError(f"{folder}: the weights do not match the sha256 in the model card")
    model, _ = load_model(folder, device)
    return model.eval()


def export_model(run: Path, models: Path, name: str) -> Path:
    """Copy a run's latest weights and card into ``models/NAME`` (card gains name and sha256)."""
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ParameterError(f"model name {name!r}: use letters, digits, '-', '_' and '.'")
    if not (run / MODEL_FILE).is_file():
        raise ParameterError(f"{run}: no trained model (run `scan-server train` first)")
    target = models / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / MODEL_FILE, target / MODEL_FILE)
    card = json.loads((run / CARD_FILE).read_text())
    card.update({"name": name, "weights_sha256": weights_sha256(target)})
    (target / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return target
