"""Maps of what a scan has seen so far, over its field of view: where the material is (the
calibrated dark-field fraction of the acquired patterns, ``physics.detector_signals``,
interpolated, on the session's own scale) and how densely each place is covered. They are
the inputs of the value map (``policy/value_map.py``).

**The session's own levels** (``material_levels``): nothing here assumes how many decades
separate vacuum from material — that depends on the detector (its edge blur, background,
the dose) and on the material. A vacuum level is accepted only where the data show it as a
*place*: each pattern's log₁₀ dark-field fraction is compared with its neighbours' (a
leave-one-out Gaussian average over σ = max(1.5 Å, the scan's spacing)); vacuum regions
span several Å, so across the scan the two correlate strongly (0.6–0.95 measured on fields
with vacuum, sharp or blurred detector, ours and abTEM's; 0.3–0.5 at 50 positions on an
abTEM field with small holes), while a film's pattern-to-pattern variation is atomic-scale
and noise, which the neighbours do not predict (−0.4…+0.3 measured on films, with and
without contamination; without spatial structure the correlation scatters by 1/√P over P
patterns). Above ``COHERENCE_MIN`` and ``COHERENCE_SIGMAS``/√P (a 3σ test of "vacuum is
a place": 0.42 at 50 patterns, 0.3 from 100 on) the smoothed values are split in
two levels (Otsu) — the vacuum and the material level, each the median of its class — and
every map is expressed in that contrast: 0 at the material level, −1 at the vacuum level.
Below it the session has one level (a film): the maps are scaled by the smoothed values'
own spread and the do-no-harm gate keeps the Halton continuation.

The maps are ``map_px`` × ``map_px`` over the field of view in normalised [0, 1]²
coordinates (pixel (i, j) centred at ((i + ½)/map_px, (j + ½)/map_px)). Each acquired
position is splatted bilinearly onto the map, then smoothed by a Gaussian of σ Å: the
interpolated dark-field level is the Nadaraya–Watson estimate (Σ w·v / Σ w), the
coverage is the number of positions within about σ (1 − exp(−n) saturates it).
Lengths are in Å so the maps mean the same physics whatever the field's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu

#: the version of the evidence (a value map trained on another version is refused): 1 was release 2's
#: dark field from the metadata's disc, in decades; 2 is calibrated and on the session's own scale
EVIDENCE_VERSION = 2
#: the two smoothing lengths of the maps, in Å: about a probe radius, and a few probe spacings
EVIDENCE_SIGMAS_ANGSTROM = (1.0, 3.0)
#: channels, in order (the value network's inputs)
CHANNELS = ("dark_field_relative_1A", "dark_field_relative_3A", "vacuum_coherence", "coverage_1A", "coverage_3A")
#: a vacuum level needs each pattern's log dark field to correlate this well with its neighbours' …
COHERENCE_MIN = 0.3
#: … and by this many standard errors of a correlation without spatial structure (1/√P over P patterns)
COHERENCE_SIGMAS = 3.0
#: the neighbours' average is over a Gaussian of σ = max(this, the scan's mean spacing), Å
COHERENCE_SIGMA_ANGSTROM = 1.5
#: at most this many patterns (evenly strided) enter the level fit, so its cost is bounded …
LEVEL_FIT_PATTERNS = 2000
#: … and each is compared with at most this many nearest neighbours
NEIGHBOURS = 32
#: the maps on the session's scale are clipped to ± this (a film's scale is its own small spread)
RELATIVE_CLIP = 3.0


@dataclass(frozen=True)
class MaterialLevels:
    """A session's dark-field levels (log₁₀ fractions): ``material_log``, ``vacuum_log`` (None:
    no vacuum level, a film), ``contrast_log`` (material − vacuum; for a film the smoothed
    values' own spread), ``coherence`` (the leave-one-out correlation of the module
    docstring) and ``floor`` (the fraction that stands for zero, half the least positive one)."""

    material_log: float
    vacuum_log: float | None
    contrast_log: float
    coherence: float
    floor: float

    @property
    def vacuum_seen(self) -> bool:
        return self.vacuum_log is not None

    def relative(self, log_dark_field: np.ndarray) -> np.ndarray:
        """log₁₀ dark-field fractions on the session's scale: 0 material, −1 vacuum (clipped to
        ± ``RELATIVE_CLIP``)."""
        relative = (np.asarray(log_dark_field, dtype=np.float64) - self.material_log) / self.contrast_log
        return np.clip(relative, -RELATIVE_CLIP, RELATIVE_CLIP)

    def as_dict(self) -> dict:
        return {"material_log": self.material_log, "vacuum_log": self.vacuum_log,
                "contrast_log": self.contrast_log, "coherence": self.coherence, "floor": self.floor}


def log_dark_field(dark_field_fraction: np.ndarray) -> tuple[np.ndarray, float]:
    """log₁₀ of the fractions (P,) with zero standing at half the least positive one (the
    session's own floor: what one count is at its dose), and that floor; NaN stays NaN."""
    values = np.asarray(dark_field_fraction, dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    floor = 0.5 * float(positive.min()) if len(positive) else 1e-6
    with np.errstate(invalid="ignore"):
        return np.log10(np.where(np.isfinite(values), np.maximum(values, floor), np.nan)), floor


def neighbour_average(positions_angstrom: np.ndarray, values: np.ndarray, sigma_angstrom: float) -> np.ndarray:
    """Each point's leave-one-out Gaussian average (P,) of ``values`` (P,) at positions (P, 2) Å
    over its ``NEIGHBOURS`` nearest others within 3 σ (NaN where it has none): P · NEIGHBOURS
    pairs at most, whatever the density."""
    count = min(NEIGHBOURS + 1, len(values))
    distance, index = cKDTree(positions_angstrom).query(positions_angstrom, k=count,
                                                        distance_upper_bound=3 * sigma_angstrom)
    distance, index = distance.reshape(len(values), -1)[:, 1:], index.reshape(len(values), -1)[:, 1:]
    found = np.isfinite(distance)
    weight = np.where(found, np.exp(-0.5 * (np.where(found, distance, 0.0) / sigma_angstrom) ** 2), 0.0)
    neighbour = values[np.where(found, index, 0)]
    total = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weight * neighbour).sum(axis=1) / total, np.nan)


def material_levels(positions_angstrom: np.ndarray, dark_field_fraction: np.ndarray,
                    extent_angstrom: tuple[float, float]) -> MaterialLevels:
    """The session's levels from the acquired positions (P, 2) Å and their patterns'
    dark-field fractions (P,) (NaN: blanked, left out), over a field of ``extent_angstrom``."""
    log_df, floor = log_dark_field(dark_field_fraction)
    usable = np.isfinite(log_df)
    positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)[usable]
    values = log_df[usable]
    if len(values) > LEVEL_FIT_PATTERNS:
        keep = np.linspace(0, len(values) - 1, LEVEL_FIT_PATTERNS).round().astype(int)
        positions, values = positions[keep], values[keep]
    if len(values) < 8 or np.ptp(values) == 0:
        level = float(np.median(values)) if len(values) else float(np.log10(floor))
        return MaterialLevels(level, None, 1.0, 0.0, floor)
    spacing = float(np.sqrt(np.prod(np.maximum(extent_angstrom, 1e-6)) / len(values)))
    smoothed = neighbour_average(positions, values, max(COHERENCE_SIGMA_ANGSTROM, spacing))
    paired = np.isfinite(smoothed)
    values, smoothed = values[paired], smoothed[paired]
    if len(values) < 8 or np.ptp(smoothed) == 0 or np.ptp(values) == 0:
        return MaterialLevels(float(np.median(values)) if len(values) else float(np.log10(floor)), None, 1.0, 0.0,
                              floor)
    coherence = float(np.corrcoef(values, smoothed)[0, 1])
    if coherence >= max(COHERENCE_MIN, COHERENCE_SIGMAS / np.sqrt(len(values))):
        split = threshold_otsu(smoothed)
        material, vacuum = float(np.median(values[smoothed > split])), float(np.median(values[smoothed <= split]))
        if material > vacuum:
            return MaterialLevels(material, vacuum, material - vacuum, coherence, floor)
    spread = float(1.4826 * np.median(np.abs(smoothed - np.median(smoothed))))
    return MaterialLevels(float(np.median(values)), None, max(spread, 1e-3), coherence, floor)


@dataclass(frozen=True)
class EvidenceMaps:
    """The evidence over the field of view: ``maps`` (C, map_px, map_px) float32, channels as
    ``CHANNELS``: the log₁₀ dark-field fraction on the session's scale (0 material, −1
    vacuum; σ = 1 and 3 Å), the session's vacuum coherence (a constant map), and the
    saturated coverage 1 − exp(−n) (σ = 1 and 3 Å); ``levels``: the session's levels."""

    maps: np.ndarray
    levels: MaterialLevels

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
    calibrated dark-field fractions (P,) (NaN: blanked, ignored), the field of view's extent
    (y, x) in Å. P ≥ 1."""
    positions = np.asarray(positions_unit, dtype=np.float64).reshape(-1, 2)
    extent = np.maximum(np.asarray(extent_angstrom, dtype=np.float64), 1e-6)
    levels = material_levels(positions * extent, dark_field_fraction, extent_angstrom)
    log_df, _ = log_dark_field(dark_field_fraction)
    seen = np.isfinite(log_df)
    relative = levels.relative(log_df[seen]) if seen.any() else np.zeros(0)
    pixel_angstrom = extent / map_px
    weights = splat(positions[seen], np.ones(int(seen.sum())), map_px)
    weighted = splat(positions[seen], relative, map_px)
    coverage_weights = splat(positions, np.ones(len(positions)), map_px)
    mean_relative = float(relative.mean()) if len(relative) else 0.0
    channels = {"vacuum_coherence": np.full((map_px, map_px), levels.coherence)}
    for sigma_angstrom in EVIDENCE_SIGMAS_ANGSTROM:
        sigma_px = tuple(sigma_angstrom / pixel_angstrom)
        density = _smooth(weights, sigma_px)
        # Nadaraya–Watson, shrunk to the session's mean where there is no evidence nearby
        prior = 1e-3 * max(float(density.max()), 1e-12)
        label = f"{sigma_angstrom:.0f}A"
        channels[f"dark_field_relative_{label}"] = (_smooth(weighted, sigma_px) + prior * mean_relative) / (density + prior)
        positions_within_sigma = _smooth(coverage_weights, sigma_px) * 2 * np.pi * sigma_px[0] * sigma_px[1]
        channels[f"coverage_{label}"] = 1.0 - np.exp(-positions_within_sigma)
    return EvidenceMaps(np.stack([channels[name] for name in CHANNELS]).astype(np.float32), levels)


def sample_map(image: np.ndarray, positions_unit: np.ndarray) -> np.ndarray:
    """Bilinear values of a (map_px, map_px) map at positions (n, 2) in [0, 1]² → (n,)."""
    map_px = image.shape[-1]
    coordinate = np.clip(np.asarray(positions_unit, dtype=np.float64) * map_px - 0.5, 0.0, map_px - 1.0)
    return ndimage.map_coordinates(np.asarray(image, dtype=np.float64), coordinate.T, order=1, mode="nearest")
