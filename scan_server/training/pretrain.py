"""Stage 2: supervised initialisation of the policy to a Halton continuation (appendix C).

Each step plays ``batch`` Halton scans of ``steps`` sub-sequences on random training
recordings, reconstructing after each sub-sequence, and fits the policy's means to the
next Halton points: K(θ) = Σ_t ||R_t − R_t^init||² (eq. C1), averaged over episodes."""

from __future__ import annotations

import torch

from ..policy.model import AdaptiveModel
from ..rollout import EpisodeBatch, halton_teacher, rollout
from .data import TrainingData
from .run import StageState
from .settings import TrainSettings


def halton_episode(batch: EpisodeBatch, model: AdaptiveModel, steps: int, seeds: list[int],
                   rop_iterations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs the policy sees along Halton scans (the rollout with the Halton continuation as
    its teacher) and the Halton targets: last positions (B, T−1, n, 2), latents (B, T−1, D),
    targets (B, T−1, n, 2)."""
    episodes = rollout(batch, model, steps, seeds, iterations=rop_iterations, final_iterations=0,
                       teacher=halton_teacher(model.settings.policy.subsequence, seeds))
    device = batch.device
    return (episodes.inputs_positions.to(device), episodes.latents.to(device), episodes.actions.to(device))


def make_step(model: AdaptiveModel, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
              data: TrainingData, settings: TrainSettings):  # type: ignore[no-untyped-def]
    def step(state: StageState) -> dict:
        batch = EpisodeBatch.over(data.sample(state.rng, settings.batch), data.device)
        seeds = [model.settings.policy.halton_seed] * settings.batch
        inputs, latents, targets = halton_episode(batch, model, settings.steps, seeds, settings.rop_iterations)
        means, _ = network(inputs, latents)
        loss = ((means - targets) ** 2).sum() / settings.batch
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"halton_mse": loss.item(), "rms_distance": ((means - targets) ** 2).sum(-1).mean().sqrt().item()}

    return step
