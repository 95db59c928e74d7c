"""The adaptive model: encoder + GRU policy, with its presets and settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .encoder import ENCODER_PRESETS, ConvAutoencoder, EncoderSettings, prepare_input
from .recurrent import POLICY_PRESETS, PolicySettings, ScanPolicy


@dataclass(frozen=True)
class ModelSettings:
    preset: str
    encoder: EncoderSettings
    policy: PolicySettings

    @classmethod
    def from_preset(cls, name: str) -> ModelSettings:
        return cls(preset=name, encoder=ENCODER_PRESETS[name], policy=POLICY_PRESETS[name])

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSettings:
        encoder = EncoderSettings(input_px=data["encoder"]["input_px"], channels=tuple(data["encoder"]["channels"]))
        return cls(preset=data["preset"], encoder=encoder, policy=PolicySettings(**data["policy"]))


class AdaptiveModel(nn.Module):
    """Encoder (frozen after the autoencoder stage) and policy."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        self.settings = settings
        self.autoencoder = ConvAutoencoder(settings.encoder)
        self.policy = ScanPolicy(settings.policy, settings.encoder.latent_dim)

    @torch.no_grad()
    def encode(self, potential: torch.Tensor, region: tuple[slice, slice]) -> torch.Tensor:
        """(B, H, W) complex reconstructions → latents (B, D); no gradient (the encoder is fixed)."""
        images = prepare_input(potential, region, self.settings.encoder.input_px)
        return self.autoencoder.encode(images.to(next(self.parameters()).device))

    def forward(self, last_positions_unit: torch.Tensor, latent: torch.Tensor,
                hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy over a sequence of steps: (B, S, n, 2), (B, S, D) → means (B, S, n, 2), hidden."""
        return self.policy(last_positions_unit, latent, hidden)
