"""Maps of what a scan has seen so far, over its field of view: where the material is (the
dark-field fraction of the acquired patterns, interpolated) and how densely each place is
covered. They are the inputs of the value map (``policy/value_map.py``).

The maps are ``map_px`` × ``map_px`` over the field of view in normalised [0, 1]²
coordinates (pixel (i, j) centred at ((i + ½)/map_px, (j + ½)/map_px)). Each acquired
position is splatted bilinearly onto the map, then smoothed by a Gaussian of σ Å: the
interpolated dark-field fraction is the Nadaraya–Watson estimate (Σ w·v / Σ w), the
coverage is the number of positions within about σ (1 − exp(−n) saturates it).
Lengths are in Å so the maps mean the same physics whatever the field's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: the two smoothing lengths of the maps, in Å: about a probe radius, and a few probe spacings
EVIDENCE_SIGMAS_ANGSTROM = (1.0, 3.0)
#: dark-field fractions are floored here before the logarithm (below a vacuum probe's own tail)
DARK_FIELD_FLOOR = 1e-5
#: the session's material reference: this quantile of the acquired patterns' log dark-field fraction
MATERIAL_QUANTILE = 0.9
#: channels, in order (the value network's inputs)
CHANNELS = ("dark_field_relative_1A", "dark_field_relative_3A", "dark_field_log_3A", "coverage_1A", "coverage_3A")


@dataclass(frozen=True)
class EvidenceMaps:
    """The evidence over the field of view: ``maps`` (C, map_px, map_px) float32, channels as
    ``CHANNELS``: log10 dark-field fraction relative to the session's material reference (σ = 1
    and 3 Å), the absolute log10 dark-field fraction (σ = 3 Å, offset by +2.5), and the
    saturated coverage 1 − exp(−n) (σ = 1 and 3 Å)."""

    maps: np.ndarray

    @property
    def map_px(self) -> int:
        return int(self.maps.shape[-1])


def splat(positions_unit: np.ndarray, values: np.ndarray, map_px: int) -> np.ndarray:
    """Bilinear splat of ``values`` (P,) at positions (P, 2) in [0, 1]² onto (map_px, map_px);
    positions outside the field are clipped to its edge. The sum of the map is Σ values."""
    grid = np.zeros((map_px + 1, map_px + 1))
    coordinate = np.clip(np.asarray(positions_unit, dtype=np.float64) * map_px - 0.5, 0.0, map_px - 1.0)
    low = np.floor(coordinate).astype(np.int64)
    fraction = coordinate - low
    for dy in (0, 1):
        for dx in (0, 1):
            weight = (fraction[:, 0] if dy else 1 - fraction[:, 0]) * (fraction[:, 1] if dx else 1 - fraction[:, 1])
            np.add.at(grid, (low[:, 0] + dy, low[:, 1] + dx), weight * values)
    return grid[:map_px, :map_px]


def _smooth(image: np.ndarray, sigma_px: tuple[float, float]) -> np.ndarray:
    """Gaussian smoothing with the kernel summing to one; outside the field counts as empty."""
    return ndimage.gaussian_filter(image, sigma_px, mode="constant", cval=0.0)


def evidence_maps(positions_unit: np.ndarray, dark_field_fraction: np.ndarray, extent_angstrom: tuple[float, float],
                  map_px: int) -> EvidenceMaps:
    """The evidence maps of a scan: acquired positions (P, 2) in [0, 1]², their patterns'
    dark-field fractions (P,), the field of view's extent (y, x) in Å. P ≥ 1."""
    positions = np.asarray(positions_unit, dtype=np.float64).reshape(-1, 2)
    log_df = np.log10(np.maximum(np.asarray(dark_field_fraction, dtype=np.float64), DARK_FIELD_FLOOR))
    reference = float(np.quantile(log_df, MATERIAL_QUANTILE))
    pixel_angstrom = np.maximum(np.asarray(extent_angstrom, dtype=np.float64), 1e-6) / map_px
    weights = splat(positions, np.ones(len(positions)), map_px)
    weighted = splat(positions, log_df, map_px)
    channels = {}
    for sigma_angstrom in EVIDENCE_SIGMAS_ANGSTROM:
        sigma_px = tuple(sigma_angstrom / pixel_angstrom)
        density = _smooth(weights, sigma_px)
        # Nadaraya–Watson, shrunk to the session's mean where there is no evidence nearby
        prior = 1e-3 * density.max()
        estimate = (_smooth(weighted, sigma_px) + prior * log_df.mean()) / (density + prior)
        label = f"{sigma_angstrom:.0f}A"
        channels[f"dark_field_relative_{label}"] = estimate - reference
        channels[f"dark_field_log_{label}"] = estimate + 2.5  # the network reads it at 3 Å only (CHANNELS)
        positions_within_sigma = density * 2 * np.pi * sigma_px[0] * sigma_px[1]
        channels[f"coverage_{label}"] = 1.0 - np.exp(-positions_within_sigma)
    return EvidenceMaps(np.stack([channels[name] for name in CHANNELS]).astype(np.float32))


def sample_map(image: np.ndarray, positions_unit: np.ndarray) -> np.ndarray:
    """Bilinear values of a (map_px, map_px) map at positions (n, 2) in [0, 1]² → (n,)."""
    map_px = image.shape[-1]
    coordinate = np.clip(np.asarray(positions_unit, dtype=np.float64) * map_px - 0.5, 0.0, map_px - 1.0)
    return ndimage.map_coordinates(np.asarray(image, dtype=np.float64), coordinate.T, order=1, mode="nearest")
