"""Shipped models: ``models/NAME/model.safetensors`` + ``model_card.json``.

Loading reads safetensors only (no code runs on load) and checks the weights' sha256
against the card when the card records it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..errors import ParameterError
from ..io.open import open_recording
from ..physics.simulate import training_physics
from ..scanning.registry import STRATEGIES
from .model import AdaptiveModel
from .model_folder import CARD_FILE, MODEL_FILE, ModelFolder


def load_model_folder(folder: Path, device: torch.device | None = None) -> AdaptiveModel:
    """An installed model in eval mode (its weights' sha256 checked against the card)."""
    model, _ = ModelFolder(folder).load(device)
    return model.eval()


def evaluation_summary(report: dict) -> dict:
    """The figures a model card keeps from an evaluation report."""
    keys = ("positions", "reference_positions", "subsequences", "recordings", "final_iterations", "headline_score")
    summary = {k: report[k] for k in keys if k in report}
    ratios = report.get("dose_ratio_vs_halton", {})
    summary["dose_ratio_vs_halton"] = {name: {"mean": r["mean"], "ci95": r["ci95"]} for name, r in ratios.items()}
    for strategy in (*STRATEGIES, "full"):  # "full": the full-data reconstruction's own figures
        if strategy in report:
            summary[strategy] = {k: report[strategy][k] for k in ("ssim_mean", "ssim_std", "resolution_angstrom_mean")}
    summary.update({k: v for k, v in report.items() if k.startswith("q_")})
    if "truth_free_agreement" in report:
        summary["truth_free_agreement"] = report["truth_free_agreement"]
    if report.get("dose_ratio_by_family"):
        summary["dose_ratio_by_family"] = report["dose_ratio_by_family"]
    return summary


def export_model(run: Path, models: Path, name: str, evaluations: list[Path] | None = None,
                 replace_existing: bool = False) -> Path:
    """Copy a run's latest weights and card into ``models/NAME`` (card gains name and sha256,
    and the evaluation figures of each ``report.json`` given). An installed model is never
    overwritten unless ``replace_existing``."""
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ParameterError(f"model name {name!r}: use letters, digits, '-', '_' and '.'")
    source = ModelFolder(run)
    if not source.exists():
        raise ParameterError(f"{run}: no trained model (run `scan-server train` first)")
    target = models / name
    if target.exists() and not replace_existing:
        raise ParameterError(f"{target} exists: choose another --name, or --replace to overwrite it")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / MODEL_FILE, target / MODEL_FILE)
    parsed = source.read_card()
    card = dict(parsed.document)
    card.update({"name": name, "weights_sha256": ModelFolder(target).weights_sha256(),
                 "strategies": list(parsed.settings.strategies)})
    data = card.get("data") or {}
    folder = Path(str(data.get("folder", "")))
    if data and not data.get("physics") and data.get("recordings") and folder.is_dir():
        # a card written before cards recorded the physics: describe the data it names, where it still is
        recordings = [open_recording(folder / n) for n in data["recordings"] if (folder / n).is_file()]
        card["data"] = {**data, "physics": training_physics(recordings)} if recordings else data
    for evaluation in evaluations or []:
        if not evaluation.is_file():
            raise ParameterError(f"{evaluation}: no such evaluation report")
        summary = {"report": str(evaluation), **evaluation_summary(json.loads(evaluation.read_text()))}
        card.setdefault("evaluations", []).append(summary)
    (target / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return target
