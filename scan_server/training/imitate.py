"""Stage ``imitate``: the GRU policy learns from the value map by imitation (DAgger).

Each step plays ``batch`` episodes of ``steps`` sub-sequences. At every state the teacher
(the model's own value map, ``ValueMapScan.teacher_positions``: it needs no memory of the
episode, so it can be asked at states it did not make) names its ``n`` positions; each
episode acquires the teacher's positions with probability β and the student's means
otherwise, β falling linearly from 1 to 0 over the first half of the stage (DAgger's
mixture: the student learns at the states it visits itself). The student's means, recomputed
in one pass over the recorded inputs, are matched to the teacher's positions by a Hungarian
assignment (the order of a sub-sequence carries no meaning) and their squared distances
minimised.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..errors import ParameterError
from ..policy.model import AdaptiveModel
from ..policy.value_map import ValueMapScan
from ..rollout import EpisodeBatch, Teacher, rollout
from ..scanning.state import ScanState
from .data import TrainingData
from .run import StageState
from .settings import TrainSettings


def matched_targets(means: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The targets (…, n, 2) reordered so that target k is the one assigned to mean k (the
    assignment of least total squared distance, per sub-sequence)."""
    flat_means = means.detach().reshape(-1, *means.shape[-2:]).cpu().numpy()
    flat_targets = targets.reshape(-1, *targets.shape[-2:])
    ordered = torch.empty_like(flat_targets)
    for k, (m, t) in enumerate(zip(flat_means, flat_targets.cpu().numpy())):
        cost = ((m[:, None, :] - t[None, :, :]) ** 2).sum(-1)
        rows, columns = linear_sum_assignment(cost)
        ordered[k, rows] = flat_targets[k, columns]
    return ordered.reshape(targets.shape)


def follow_probability(iteration: int, iterations: int) -> float:
    """DAgger's β at an iteration (0-based): 1 → 0 linearly over the first half, then 0."""
    return max(0.0, 1.0 - iteration / max(iterations / 2, 1))


def value_map_teacher(model: AdaptiveModel, n: int) -> Teacher:
    if model.value_map is None or model.settings.value_map is None:
        raise ParameterError("imitation needs a model with a value map (run `train value-map` first)")
    scan = ValueMapScan(model.value_map, model.settings.value_map, model.settings.policy.halton_seed)

    def teacher(step: int, states: list[ScanState]) -> torch.Tensor:
        return torch.stack([torch.as_tensor(scan.teacher_positions(s, n)) for s in states])

    return teacher


def make_step(model: AdaptiveModel, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
              data: TrainingData, settings: TrainSettings):  # type: ignore[no-untyped-def]
    n = model.settings.policy.subsequence
    teacher = value_map_teacher(model, n)

    def step(state: StageState) -> dict:
        beta = follow_probability(state.iteration, settings.iterations)
        batch = EpisodeBatch.over(data.sample(state.rng, settings.batch), data.device)
        seeds = [model.settings.policy.halton_seed] * settings.batch
        episodes = rollout(batch, model, settings.steps, seeds, generator=state.generator,
                           iterations=settings.rop_iterations, final_iterations=0, teacher=teacher,
                           follow_teacher=beta)
        means, _ = network(episodes.inputs_positions.to(batch.device), episodes.latents.to(batch.device))
        targets = matched_targets(means, episodes.targets.to(batch.device))
        squared = ((means - targets) ** 2).sum(-1)
        loss = squared.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"imitation_rms": float(np.sqrt(squared.detach().mean().item())), "follow_teacher": beta}

    return step
