"""A real detector's imperfections, for simulated recordings: what the forward model's ideal
far field goes through before it is written as counts.

``DetectorModel`` is one detector (fixed numbers); ``DetectorRanges`` draws one per
recording (training's randomised detector physics). In the order they act on a pattern:

1. **descan**: the disc moves linearly with the fast-scan coordinate x, ``descan_px`` from
   one side of the field to the other, in the detector direction ``descan_angle_deg``
   (bilinear resampling of the expected intensity);
2. **point-spread**: a Gaussian of σ = ``psf_px`` detector pixels (acting on the expected
   intensity, so Poisson statistics stay exact: a counting detector's charge sharing
   before the counter, not an integrating one's blur of the noise);
3. **gain**: a fixed per-pixel gain 1 + ``gain_spread`` · N(0, 1);
4. **counts**: Poisson with ``electrons_per_pattern`` (the simulation's) in every frame,
   plus ``dark_counts`` per pixel per frame (Poisson), plus ``hot_pixel_counts`` in each of
   ``hot_pixels`` pixels; ``dead_pixels`` read zero; a fraction ``blanked_fraction`` of the
   frames were taken with the beam blanked (dark counts only).

Miscalibrated metadata is the other half of a real detector: the recording's metadata says
semi-angle α and sampling Δk, but the simulation used α / (1 + ``semiangle_error``) and
Δk / (1 + ``sampling_error``) (so +0.03 writes a value 3 % too large, as in
``docs/adaptivity.md`` §5: metadata 34 mrad, true 33).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from ..errors import ParameterError


@dataclass(frozen=True)
class DetectorModel:
    """One detector's imperfections (module docstring); the defaults are an ideal detector."""

    psf_px: float = 0.0
    descan_px: float = 0.0
    descan_angle_deg: float = 0.0
    semiangle_error: float = 0.0
    sampling_error: float = 0.0
    gain_spread: float = 0.0
    dark_counts: float = 0.0
    hot_pixels: int = 0
    hot_pixel_counts: float = 400.0
    dead_pixels: int = 0
    blanked_fraction: float = 0.0

    def __post_init__(self) -> None:
        if min(self.psf_px, self.descan_px, self.gain_spread, self.dark_counts, self.hot_pixel_counts) < 0 \
                or self.hot_pixels < 0 or self.dead_pixels < 0:
            raise ParameterError("detector: point-spread, descan, gain spread, dark counts and hot/dead pixel "
                                 "numbers must not be negative")
        if not (abs(self.semiangle_error) < 0.5 and abs(self.sampling_error) < 0.5):
            raise ParameterError("detector: semi-angle and sampling errors are fractions within ±0.5 "
                                 f"(got {self.semiangle_error}, {self.sampling_error})")
        if not 0 <= self.blanked_fraction < 1:
            raise ParameterError(f"detector: blanked fraction must lie in [0, 1), got {self.blanked_fraction}")

    @property
    def ideal(self) -> bool:
        return self == DetectorModel(descan_angle_deg=self.descan_angle_deg, hot_pixel_counts=self.hot_pixel_counts)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DetectorRanges:
    """Ranges that ``draw`` samples one ``DetectorModel`` from per recording (uniform, the
    dark counts log-uniform above 10⁻³ or 0 with probability ¼): training's randomised
    detector physics. ``dose_range``: electrons per pattern, log-uniform."""

    psf_px: tuple[float, float] = (0.0, 2.0)
    descan_px: tuple[float, float] = (0.0, 2.0)
    semiangle_error: tuple[float, float] = (-0.05, 0.05)
    sampling_error: tuple[float, float] = (-0.05, 0.05)
    gain_spread: tuple[float, float] = (0.0, 0.05)
    dark_counts: tuple[float, float] = (1e-3, 0.2)
    hot_pixels: tuple[int, int] = (0, 8)
    dead_pixels: tuple[int, int] = (0, 8)
    blanked_fraction: tuple[float, float] = (0.0, 0.02)
    dose_range: tuple[float, float] = (1e3, 1e6)

    def __post_init__(self) -> None:
        for item in fields(self):
            low, high = getattr(self, item.name)
            if low > high:
                raise ParameterError(f"detector range {item.name}: low {low} > high {high}")
        if self.dose_range[0] <= 0 or self.dark_counts[0] <= 0:
            raise ParameterError("detector ranges: the dose and dark-count ranges must be positive (log-uniform)")

    def draw(self, rng: np.random.Generator) -> tuple[DetectorModel, float]:
        """One detector and one dose (electrons per pattern)."""
        def uniform(pair: tuple[float, float]) -> float:
            return float(rng.uniform(*pair))

        def log_uniform(pair: tuple[float, float]) -> float:
            return float(math.exp(rng.uniform(math.log(pair[0]), math.log(pair[1]))))

        dark = 0.0 if rng.random() < 0.25 else log_uniform(self.dark_counts)
        model = DetectorModel(
            psf_px=uniform(self.psf_px), descan_px=uniform(self.descan_px),
            descan_angle_deg=float(rng.uniform(0.0, 360.0)), semiangle_error=uniform(self.semiangle_error),
            sampling_error=uniform(self.sampling_error), gain_spread=uniform(self.gain_spread), dark_counts=dark,
            hot_pixels=int(rng.integers(self.hot_pixels[0], self.hot_pixels[1] + 1)),
            dead_pixels=int(rng.integers(self.dead_pixels[0], self.dead_pixels[1] + 1)),
            blanked_fraction=uniform(self.blanked_fraction))
        return model, log_uniform(self.dose_range)


@dataclass(frozen=True)
class DetectorDefects:
    """The fixed per-pixel part of a drawn detector: gains (M, M), hot and dead pixel masks."""

    gain: torch.Tensor
    hot: torch.Tensor
    dead: torch.Tensor

    @classmethod
    def draw(cls, model: DetectorModel, detector_px: int, rng: np.random.Generator,
             device: torch.device) -> DetectorDefects:
        if model.hot_pixels + model.dead_pixels > detector_px**2:
            raise ParameterError(f"detector: {model.hot_pixels} hot and {model.dead_pixels} dead pixels do not fit on "
                                 f"{detector_px} × {detector_px} pixels")
        gain = np.clip(1.0 + model.gain_spread * rng.standard_normal((detector_px, detector_px)), 0.0, None)
        chosen = rng.choice(detector_px * detector_px, model.hot_pixels + model.dead_pixels, replace=False)
        hot, dead = np.zeros(detector_px**2, bool), np.zeros(detector_px**2, bool)
        hot[chosen[:model.hot_pixels]] = True
        dead[chosen[model.hot_pixels:]] = True
        shape = (detector_px, detector_px)
        return cls(torch.as_tensor(gain, device=device), torch.as_tensor(hot.reshape(shape), device=device),
                   torch.as_tensor(dead.reshape(shape), device=device))


def descan_shift_px(model: DetectorModel, positions_angstrom: np.ndarray, field_x_angstrom: tuple[float, float]
                    ) -> np.ndarray:
    """The disc's shift (n, 2) (row, column) px at positions (n, 2) Å: linear in x over the
    field [x0, x1] Å, ``descan_px`` from side to side, centred on the field."""
    x0, x1 = field_x_angstrom
    along = (np.asarray(positions_angstrom, dtype=np.float64)[:, 1] - 0.5 * (x0 + x1)) / max(x1 - x0, 1e-9)
    angle = math.radians(model.descan_angle_deg)
    return model.descan_px * along[:, None] * np.array([math.sin(angle), math.cos(angle)])


def shift_patterns(intensity: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """Patterns (n, M, M) moved by (n, 2) (row, column) px, bilinear; what leaves the detector is lost."""
    n, size = intensity.shape[0], intensity.shape[-1]
    base = torch.arange(size, dtype=intensity.dtype, device=intensity.device)
    rows = base[None, :, None] - shift_px[:, 0, None, None].to(intensity.dtype)
    columns = base[None, None, :] - shift_px[:, 1, None, None].to(intensity.dtype)
    grid = torch.stack([2 * columns.expand(n, size, size) / (size - 1) - 1,
                        2 * rows.expand(n, size, size) / (size - 1) - 1], dim=-1)
    return torch.nn.functional.grid_sample(intensity[:, None], grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=True)[:, 0]


def gaussian_blur(intensity: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Patterns (n, M, M) blurred by a normalised Gaussian of σ px (zero beyond the detector)."""
    if sigma_px <= 0:
        return intensity
    radius = max(1, int(math.ceil(4 * sigma_px)))
    offsets = torch.arange(-radius, radius + 1, dtype=intensity.dtype, device=intensity.device)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    image = intensity[:, None]
    image = torch.nn.functional.conv2d(image, kernel.view(1, 1, 1, -1), padding=(0, radius))
    image = torch.nn.functional.conv2d(image, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return image[:, 0]


def detect(intensity: torch.Tensor, positions_angstrom: np.ndarray, model: DetectorModel, defects: DetectorDefects,
           electrons_per_pattern: float, field_x_angstrom: tuple[float, float], poisson: bool,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Counts (n, M, M) (float64; expected values when not ``poisson``) of the ideal far-field
    patterns ``intensity`` (n, M, M), fractions of the incident beam, taken at positions (n, 2) Å."""
    image = intensity.to(torch.float64).clamp_min(0)
    if model.descan_px > 0:
        shift = torch.as_tensor(descan_shift_px(model, positions_angstrom, field_x_angstrom), device=image.device)
        image = shift_patterns(image, shift)
    image = gaussian_blur(image, model.psf_px) * defects.gain * electrons_per_pattern
    if model.blanked_fraction > 0:
        lit = torch.rand(len(image), generator=generator, device=image.device) >= model.blanked_fraction
        image = image * lit[:, None, None]
    image = image + model.dark_counts
    image = image + defects.hot * model.hot_pixel_counts
    counts = torch.poisson(image, generator=generator) if poisson else image
    return counts * ~defects.dead
