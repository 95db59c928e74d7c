"""``scan-server train cae|pretrain|rl|value-map|imitate``: one stage into a run folder; stages
chain (each starts from the run's latest ``model.safetensors``; ``value-map`` adds a value map
to the run's model and trains only it; ``imitate`` trains the GRU policy on that value map).
With ``torchrun`` every process plays its own episodes and DDP averages the gradients; on one
CPU it is one process."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .. import __version__
from ..errors import ParameterError
from ..policy.model import AdaptiveModel, ModelSettings
from ..policy.model_folder import CARD_FILE, ModelFolder
from ..policy.recurrent import ScanPolicy
from ..policy.value_map import ValueMapNet, ValueMapSettings
from . import cae, imitate, pretrain, reinforce, value_map
from .data import TrainingData
from .run import Distributed, checkpoint_paths, run_stage
from .settings import STAGE_DEFAULTS, TrainSettings

STAGES = {"cae": cae, "pretrain": pretrain, "rl": reinforce, "value-map": value_map, "imitate": imitate}


def _with_value_map(model: AdaptiveModel, seed: int) -> AdaptiveModel:
    """The model with a new, untrained value map (when it has none yet)."""
    if model.value_map is None:
        torch.manual_seed(seed)
        model.settings = replace(model.settings, value_map=ValueMapSettings())
        model.value_map = ValueMapNet(model.settings.value_map).to(next(model.parameters()).device)
    return model


def stage_settings(stage: str, preset: str, **given: object) -> TrainSettings:
    """The preset's defaults for this stage, overridden by what is given (None = not given)."""
    values = {**STAGE_DEFAULTS.get((preset, stage), {}), **{k: v for k, v in given.items() if v is not None}}
    return TrainSettings(preset=preset, **values)  # type: ignore[arg-type]


def _with_subsequence(model: AdaptiveModel, subsequence: int) -> AdaptiveModel:
    """The same autoencoder with a new, untrained policy proposing ``subsequence`` positions per step."""
    policy_settings = replace(model.settings.policy, subsequence=subsequence)
    model.settings = replace(model.settings, policy=policy_settings)
    model.policy = ScanPolicy(policy_settings, model.settings.encoder.latent_dim).to(next(model.parameters()).device)
    return model


def _autoencoder_card(card: dict) -> dict:
    """What of a trained model's card still holds once its policy is replaced: the
    autoencoder's training, and where it came from."""
    dropped = ("evaluations", "weights_sha256", "stage")
    kept = {k: v for k, v in card.items() if k not in dropped and not k.startswith(("pretrain", "rl"))}
    kept["training"] = {k: v for k, v in card.get("training", {}).items() if k == "cae"}
    kept["autoencoder_from"] = {"name": card.get("name"), "weights_sha256": card.get("weights_sha256")}
    return kept


def _model_for(run: Path, stage: str, settings: TrainSettings, device: torch.device,
               subsequence: int | None = None) -> tuple[AdaptiveModel, dict]:
    """The run's latest model, or a new one of the preset. ``subsequence`` (positions per
    step) replaces the preset's; on a trained run only the pretraining stage may change it
    (it then starts a new policy on the trained autoencoder, e.g. one per Table I row)."""
    folder = ModelFolder(run)
    if folder.exists():
        # a run's card records no sha256 to check; the value-map stage replaces a value map trained on another
        # evidence version (release 2's uncalibrated dark field) with a new one
        model, parsed = folder.load(device, verify=False, drop_stale_value_map=stage == "value-map")
        card = dict(parsed.document)
        if model.settings.preset != settings.preset:
            raise ParameterError(f"{run} holds a {model.settings.preset!r} model, not {settings.preset!r}")
        if subsequence is None or subsequence == model.settings.policy.subsequence:
            return model, card
        if stage != "pretrain":
            raise ParameterError(f"{run} holds a policy of {model.settings.policy.subsequence} positions per step; "
                                 f"only the pretrain stage can start one of {subsequence}")
        checkpoint = checkpoint_paths(run, "pretrain")[1]
        if checkpoint.is_file():
            held = json.loads(checkpoint.read_text())["settings"]["policy"]["subsequence"]
            if held != subsequence:
                raise ParameterError(f"{run} holds a pretraining checkpoint of {held} positions per step; "
                                     f"start the policy of {subsequence} in a new run folder")
        torch.manual_seed(settings.seed)
        return _with_subsequence(model, subsequence), _autoencoder_card(card)
    if settings.preset not in ("cpu", "paper", "tiny"):
        raise ParameterError(f"unknown preset {settings.preset!r}: choose cpu or paper")
    torch.manual_seed(settings.seed)
    model = AdaptiveModel(ModelSettings.from_preset(settings.preset)).to(device)
    return (model if subsequence is None else _with_subsequence(model, subsequence)), {}


def train(stage: str, settings: TrainSettings, data_folder: Path, run: Path, device: torch.device,
          subsequence: int | None = None) -> Path | None:
    """Run one stage; returns the model card's path in the main process (None elsewhere).
    ``subsequence``: positions per step when it differs from the preset's (see ``_model_for``)."""
    if stage not in STAGES:
        raise ParameterError(f"unknown stage {stage!r}: choose {', '.join(STAGES)}")
    distributed = Distributed.from_environment()
    data = TrainingData(data_folder, distributed.rank, distributed.world, device)
    model, card = _model_for(run, stage, settings, device, subsequence)
    if stage == "cae":
        parameters, network = model.autoencoder.parameters(), distributed.wrap(model.autoencoder)
    elif stage == "value-map":
        model = _with_value_map(model, settings.seed)
        model.requires_grad_(False)
        model.value_map.requires_grad_(True)  # type: ignore[union-attr]
        parameters, network = model.value_map.parameters(), distributed.wrap(model.value_map)  # type: ignore[union-attr]
    else:
        model.autoencoder.requires_grad_(False)
        model.policy.settings = replace(model.policy.settings, sigma=settings.sigma)
        model.settings = replace(model.settings, policy=model.policy.settings)
        parameters, network = model.policy.parameters(), distributed.wrap(model)
    optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate)
    # an installed model's card also holds its weights' sha256 and evaluations: both describe weights this
    # stage is about to change
    stale = ("settings", "weights_sha256", "evaluations")
    described = data.describe()
    # the card's "data" is the latest stage's; earlier stages that do not name theirs used it
    previous = {name: {"data": card["data"], **entry} if "data" in card else entry
                for name, entry in card.get("training", {}).items()}
    card = {"name": run.name, "version": __version__, **{k: v for k, v in card.items() if k not in stale},
            "settings": model.settings.as_dict(),
            "training": {**previous, stage: {**asdict(settings), "processes": distributed.world, "data": described}},
            "data": described, "strategies": list(model.strategies)}
    step = STAGES[stage].make_step(model, network, optimizer, data, settings)
    run_stage(run, stage, model, optimizer, settings.iterations, step, settings.seed, card, distributed,
              settings.checkpoint_every, settings.snapshots)
    distributed.finish()
    return run / CARD_FILE if distributed.main else None


def describe(run: Path) -> str:
    card = json.loads((run / CARD_FILE).read_text())
    return f"{run}: {card['settings']['preset']} model, stages {', '.join(card.get('training', {}))}"
