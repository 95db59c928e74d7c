"""The adaptive model: encoder + GRU policy (the ``adaptive`` strategy) and, from v2 on, a
value map (the ``value-map`` strategy), with their presets and settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..scanning.registry import ADAPTIVE, VALUE_MAP
from .encoder import ENCODER_PRESETS, ConvAutoencoder, EncoderSettings, prepare_input
from .recurrent import POLICY_PRESETS, PolicySettings, ScanPolicy
from .value_map import ValueMapNet, ValueMapSettings


@dataclass(frozen=True)
class ModelSettings:
    """The model's parts; ``value_map`` is ``None`` in a model without one (v1)."""

    preset: str
    encoder: EncoderSettings
    policy: PolicySettings
    value_map: ValueMapSettings | None = None

    @classmethod
    def from_preset(cls, name: str) -> ModelSettings:
        return cls(preset=name, encoder=ENCODER_PRESETS[name], policy=POLICY_PRESETS[name])

    @property
    def strategies(self) -> tuple[str, ...]:
        """The learned strategies a model of these settings serves."""
        return (ADAPTIVE,) + ((VALUE_MAP,) if self.value_map is not None else ())

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSettings:
        encoder = EncoderSettings(input_px=data["encoder"]["input_px"], channels=tuple(data["encoder"]["channels"]))
        value_map = ValueMapSettings.from_dict(data["value_map"]) if data.get("value_map") else None
        return cls(preset=data["preset"], encoder=encoder, policy=PolicySettings(**data["policy"]), value_map=value_map)


class AdaptiveModel(nn.Module):
    """Encoder (frozen after the autoencoder stage), policy and, when the settings name one,
    the value map."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        self.settings = settings
        self.autoencoder = ConvAutoencoder(settings.encoder)
        self.policy = ScanPolicy(settings.policy, settings.encoder.latent_dim)
        self.value_map = ValueMapNet(settings.value_map) if settings.value_map is not None else None

    @property
    def strategies(self) -> tuple[str, ...]:
        """The learned strategies this model serves."""
        return self.settings.strategies

    @torch.no_grad()
    def encode(self, potential: torch.Tensor, region: tuple[slice, slice]) -> torch.Tensor:
        """(B, H, W) complex reconstructions → latents (B, D); no gradient (the encoder is fixed)."""
        images = prepare_input(potential, region, self.settings.encoder.input_px)
        return self.autoencoder.encode(images.to(next(self.parameters()).device))

    def forward(self, last_positions_unit: torch.Tensor, latent: torch.Tensor,
                hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy over a sequence of steps: (B, S, n, 2), (B, S, D) → means (B, S, n, 2), hidden."""
        return self.policy(last_positions_unit, latent, hidden)
