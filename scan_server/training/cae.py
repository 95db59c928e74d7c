"""Stage 1: the convolutional autoencoder on partial reconstructions (paper appendix A).

Each step reconstructs ``batch`` random subsets of 50…500 positions of random training
recordings (ROP, the loop's iterations) and fits the autoencoder by MSE (eq. A3)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..policy.encoder import prepare_input
from ..policy.model import AdaptiveModel
from ..rollout import EpisodeBatch, reconstruct_batch
from .data import TrainingData
from .run import StageState
from .settings import TrainSettings


def make_step(model: AdaptiveModel, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
              data: TrainingData, settings: TrainSettings):  # type: ignore[no-untyped-def]
    def step(state: StageState) -> dict:
        batch = EpisodeBatch.over(data.sample(state.rng, settings.batch), data.device)
        low, high = settings.positions_range
        subsets = [state.rng.choice(a.count, size=min(int(state.rng.integers(low, high + 1)), a.count),
                                    replace=False) for a in batch.acquisitions]
        with torch.no_grad():
            potential = reconstruct_batch(batch, subsets, settings.rop_iterations, batch.device)
            images = prepare_input(potential, batch.region, model.settings.encoder.input_px)
        loss = F.mse_loss(network(images), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"mse": loss.item()}

    return step

