"""The one policy step: reconstruct what was acquired (``physics.reconstruct.reconstruct_sets``)
→ encode it → decide the next sub-sequence (``encode_and_decide``). The rollout (training,
evaluation) and the service's learned strategy both decide through here, so a decision is
made the same way wherever it is made; pretraining encodes the same reconstructions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import AdaptiveModel


@dataclass(frozen=True)
class StepResult:
    """One step of B scans: the means of the next sub-sequence (B, n, 2) in [0, 1]², the GRU's
    hidden state after it and the latents (B, D) it saw."""

    means: torch.Tensor
    hidden: torch.Tensor
    latent: torch.Tensor


@torch.no_grad()
def encode_and_decide(model: AdaptiveModel, potential: torch.Tensor, region: tuple[slice, slice],
                      last_unit: torch.Tensor, hidden: torch.Tensor | None) -> StepResult:
    """Encode reconstructions (B, H, W) over ``region`` and step the GRU from the last
    sub-sequence actually acquired (B, n, 2) in [0, 1]² and ``hidden`` (None at the start)."""
    device = next(model.parameters()).device
    latent = model.encode(potential.to(device), region)
    means, hidden = model(last_unit.to(device, torch.float32)[:, None], latent[:, None], hidden)
    return StepResult(means[:, 0], hidden, latent)
