"""Stage 2: supervised initialisation of the policy to a Halton continuation (appendix C).

Each step plays ``batch`` Halton scans of ``steps`` sub-sequences on random training
recordings, reconstructing after each sub-sequence, and fits the policy's means to the
next Halton points: K(θ) = Σ_t ||R_t − R_t^init||² (eq. C1), averaged over episodes."""

from __future__ import annotations

import torch

from ..policy.model import AdaptiveModel
from ..rollout import Acquired, EpisodeBatch, reconstruct_episodes
from ..scanning.baselines import halton_unit
from .data import TrainingData
from .run import StageState
from .settings import TrainSettings


def halton_episode(batch: EpisodeBatch, model: AdaptiveModel, steps: int, seeds: list[int],
                   rop_iterations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs the policy sees along Halton scans and the Halton targets:
    last positions (B, T−1, n, 2), latents (B, T−1, D), targets (B, T−1, n, 2)."""
    n = model.settings.policy.subsequence
    sequences = [halton_unit(steps * n, seed) for seed in seeds]
    acquired = [Acquired() for _ in batch.microscopes]
    for microscope, episode, sequence in zip(batch.microscopes, acquired, sequences):
        microscope.reset()
        episode.add(microscope.acquire(microscope.to_angstrom(sequence[:n])))
    inputs, latents, targets = [], [], []
    with torch.no_grad():
        for t in range(1, steps):
            latents.append(model.encode(reconstruct_episodes(batch, acquired, rop_iterations), batch.region))
            inputs.append(torch.stack([torch.as_tensor(m.to_unit(e.last), dtype=torch.float32)
                                       for m, e in zip(batch.microscopes, acquired)]).to(batch.device))
            targets.append(torch.stack([torch.as_tensor(s[t * n:(t + 1) * n], dtype=torch.float32)
                                        for s in sequences]).to(batch.device))
            for microscope, episode, sequence in zip(batch.microscopes, acquired, sequences):
                episode.add(microscope.acquire(microscope.to_angstrom(sequence[t * n:(t + 1) * n])))
    return torch.stack(inputs, 1), torch.stack(latents, 1), torch.stack(targets, 1)


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
