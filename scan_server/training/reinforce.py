"""Stage 3: REINFORCE fine-tuning with per-position rewards (paper eq. 8, γ = 0).

Each step plays ``batch`` episodes with the stochastic policy (Gaussian, σ around the
means), reconstructs the final data sets, computes every position's reward from its
Voronoi cell (or a variant, see ``rewards.py``), and ascends
Σ_t Σ_m log π(a_t^m | h_t) (r_t^m − b) averaged over episodes, with b = 0 (the paper) or
the batch mean of that position's reward (``baseline``). γ = 0: each action is credited
with its own reward only. The means are recomputed in one pass over the recorded inputs
(identical to those of the rollout), so DDP sees one forward per backward."""

from __future__ import annotations

import torch

from ..evaluation.metrics import resample_to_grid
from ..policy.model import AdaptiveModel
from ..rollout import EpisodeBatch, rollout
from .data import TrainingData
from .rewards import position_rewards
from .run import StageState
from .settings import TrainSettings


def episode_rewards(batch: EpisodeBatch, positions_angstrom: torch.Tensor, final: torch.Tensor,
                    kind: str) -> torch.Tensor:
    """Rewards (B, T, n) of every position of the episodes."""
    b, steps, n, _ = positions_angstrom.shape
    phase = final.real[:, batch.region[0], batch.region[1]].to(torch.float64).cpu()
    truth = None
    if kind == "error":
        truth = torch.stack([torch.as_tensor(resample_to_grid(a.ground_truth, batch.grid)[batch.region])
                             for a in batch.acquisitions]).to(torch.float64)
    seeds = batch.positions_px(positions_angstrom.reshape(b, steps * n, 2).to(torch.float64))
    mask = torch.ones(b, steps * n, dtype=torch.bool)
    return position_rewards(phase, seeds, mask, kind, truth).reshape(b, steps, n)


def reinforce_loss(log_probs: torch.Tensor, rewards: torch.Tensor, baseline: bool) -> torch.Tensor:
    """−Σ log π(a) (r − b) / B for log-probabilities and rewards of shape (B, …); with
    ``baseline`` b is the batch mean of each position's reward, else 0 (eq. 8, γ = 0)."""
    returns = rewards - rewards.mean(dim=0, keepdim=True) if baseline else rewards
    return -(log_probs * returns.detach()).sum() / log_probs.shape[0]


def make_step(model: AdaptiveModel, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
              data: TrainingData, settings: TrainSettings):  # type: ignore[no-untyped-def]
    def step(state: StageState) -> dict:
        batch = EpisodeBatch.over(data.sample(state.rng, settings.batch), data.device)
        seeds = [model.settings.policy.halton_seed] * settings.batch
        episodes = rollout(batch, model, settings.steps, seeds, sample=True, generator=state.generator,
                           iterations=settings.rop_iterations)
        rewards = episode_rewards(batch, episodes.positions_angstrom, episodes.final, settings.reward)
        means, _ = network(episodes.inputs_positions.to(batch.device), episodes.latents.to(batch.device))
        log_probs = model.policy.log_prob(episodes.actions.to(batch.device), means)
        loss = reinforce_loss(log_probs, rewards[:, 1:].to(torch.float32).to(batch.device), settings.baseline)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"reward": float(rewards.sum(dim=(1, 2)).mean()),
                "policy_reward": float(rewards[:, 1:].sum(dim=(1, 2)).mean()), "loss": loss.item()}

    return step
