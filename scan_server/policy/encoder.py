"""Convolutional autoencoder (paper appendix A) and its input preparation.

Input: the reconstruction's real and imaginary parts over the scanned field of view,
resampled to ``input_px`` × ``input_px`` (bilinear) and standardised per image and
channel to zero mean and unit variance: (B, 2, input_px, input_px). The encoder is a
stack of 3 × 3 convolutions with stride 2 (each halves the size), ReLU between them;
the decoder mirrors it with transposed convolutions. Only the encoder is used by the
policy; the latent is flattened.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ParameterError


@dataclass(frozen=True)
class EncoderSettings:
    """input_px: side of the encoder's input; channels: output channels per stride-2 layer."""

    input_px: int
    channels: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.input_px % (2 ** len(self.channels)):
            raise ParameterError(f"input size {self.input_px} must be divisible by 2^{len(self.channels)}")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.input_px // 2 ** len(self.channels)
        return (self.channels[-1], side, side)

    @property
    def latent_dim(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w


ENCODER_PRESETS = {
    "paper": EncoderSettings(input_px=512, channels=(16, 32, 64, 128, 256, 512)),
    "cpu": EncoderSettings(input_px=64, channels=(8, 16, 32, 64)),
    "tiny": EncoderSettings(input_px=16, channels=(4, 8)),
}


class ConvAutoencoder(nn.Module):
    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__()
        self.settings = settings
        layers: list[nn.Module] = []
        previous = 2
        for i, channels in enumerate(settings.channels):
            layers.append(nn.Conv2d(previous, channels, kernel_size=3, stride=2, padding=1))
            if i < len(settings.channels) - 1:
                layers.append(nn.ReLU())
            previous = channels
        self.encoder = nn.Sequential(*layers)
        layers = []
        outputs = list(reversed(settings.channels[:-1])) + [2]
        for i, channels in enumerate(outputs):
            layers.append(nn.ConvTranspose2d(previous, channels, kernel_size=3, stride=2, padding=1, output_padding=1))
            if i < len(outputs) - 1:
                layers.append(nn.ReLU())
            previous = channels
        self.decoder = nn.Sequential(*layers)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 2, S, S) → flattened latent (B, latent_dim)."""
        return self.encoder(images).flatten(start_dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))


def prepare_input(potential: torch.Tensor, region: tuple[slice, slice], input_px: int) -> torch.Tensor:
    """(B, H, W) complex reconstructions → (B, 2, input_px, input_px) standardised input."""
    crop = potential[:, region[0], region[1]]
    channels = torch.stack([crop.real, crop.imag], dim=1).to(torch.float32)
    resized = F.interpolate(channels, size=(input_px, input_px), mode="bilinear", align_corners=True)
    mean = resized.mean(dim=(-2, -1), keepdim=True)
    std = resized.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (resized - mean) / std
