"""The GRU policy (paper Fig. 2).

L_t = FC_R(positions of the last sub-sequence), C_t = FC_z(z_t), X_t = FC_LC([L_t, C_t]),
two stacked GRU layers, R_{t+1} = FC_H(H_t): the means of the next sub-sequence's
positions in normalised [0, 1]² field-of-view coordinates (a sigmoid keeps them inside).
The stochastic policy is a Gaussian with fixed σ around each mean (σ = 0.0125).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PolicySettings:
    """subsequence: positions per step; hidden: GRU state size; layers: stacked GRUs;
    location_dim, structure_dim, input_dim: sizes of L_t, C_t and X_t; sigma: the
    Gaussian policy's σ in normalised coordinates; halton_seed: the scramble of the Halton
    sequence whose first sub-sequence starts every scan (one fixed sequence, as in the paper,
    so that pretraining has one continuation to learn)."""

    subsequence: int = 50
    hidden: int = 2048
    layers: int = 2
    location_dim: int = 256
    structure_dim: int = 512
    input_dim: int = 1024
    sigma: float = 0.0125
    halton_seed: int = 0


POLICY_PRESETS = {
    "paper": PolicySettings(),
    "cpu": PolicySettings(hidden=256, location_dim=128, structure_dim=128, input_dim=256),
    "tiny": PolicySettings(subsequence=10, hidden=32, location_dim=16, structure_dim=16, input_dim=32),
}


class ScanPolicy(nn.Module):
    def __init__(self, settings: PolicySettings, latent_dim: int) -> None:
        super().__init__()
        self.settings = settings
        n = settings.subsequence
        self.fc_r = nn.Sequential(nn.Linear(2 * n, settings.location_dim), nn.ReLU())
        self.fc_z = nn.Sequential(nn.Linear(latent_dim, settings.structure_dim), nn.ReLU())
        self.fc_lc = nn.Sequential(nn.Linear(settings.location_dim + settings.structure_dim, settings.input_dim),
                                   nn.ReLU())
        self.gru = nn.GRU(settings.input_dim, settings.hidden, num_layers=settings.layers, batch_first=True)
        self.fc_h = nn.Linear(settings.hidden, 2 * n)

    def forward(self, positions_unit: torch.Tensor, latent: torch.Tensor,
                hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence of S steps in one call (teacher forcing), or one step with S = 1.

        positions_unit: (B, S, n, 2) the positions of each step's last sub-sequence;
        latent: (B, S, D); hidden: (layers, B, hidden) or None → means of each step's next
        sub-sequence (B, S, n, 2) and the final hidden state."""
        batch, steps = latent.shape[:2]
        location = self.fc_r(positions_unit.reshape(batch * steps, -1))
        structure = self.fc_z(latent.reshape(batch * steps, -1))
        features = self.fc_lc(torch.cat([location, structure], dim=1)).view(batch, steps, -1)
        output, hidden = self.gru(features, hidden)
        means = torch.sigmoid(self.fc_h(output)).view(batch, steps, self.settings.subsequence, 2)
        return means, hidden

    def log_prob(self, actions: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """log π(a | μ) of each position (B, n) under the isotropic Gaussian of σ."""
        sigma = self.settings.sigma
        return (-((actions - means) ** 2).sum(dim=-1) / (2 * sigma**2)
                - 2 * torch.log(torch.tensor(sigma * (2 * torch.pi) ** 0.5, device=means.device)))
