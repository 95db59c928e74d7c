"""The detector's geometry and defects measured from the patterns themselves, not taken from
the metadata: the bright-field disc's centre (and its drift over the scan: descan), radius
and edge width, the hot and dead pixels, a flat background and the blanked frames.

Why: a real detector blurs the disc's edge (point-spread, charge sharing, resampling), α
and the camera length are calibrated to a few per cent, the disc drifts with the scan and
real frames carry dark counts and hot pixels. A dark-field fraction counted from the
nominal radius on reads ~1 % in vacuum on such data instead of ~10⁻⁴ and hides the vacuum
(``docs/adaptivity.md`` §5). Measured once the patterns are here, none of these
needs trusting.

Conventions: detector pixel (row, column) with the nominal zero frequency at (M/2, M/2), as
every frame is stored; lengths on the detector in pixels (``_px``), scan positions (y, x)
in Å. The disc edge model is the radial profile

    I(r) = B + A · ½ erfc((r − R) / (√2 σ)),

a disc of radius R blurred by a Gaussian of σ px (a Gaussian point-spread, pixel
integration and the spread of the disc's centre over the scan all look like this at the
edge). Dark field is counted from ``R + max(MARGIN_SIGMAS σ, MIN_MARGIN_PX)`` on: beyond
4 σ a Gaussian edge leaves ~10⁻⁴ of the disc's counts, and a pixel straddling the edge
reaches ~0.7 px past it however sharp the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, special

from ..errors import ParameterError
from ..units import mrad_to_inv_angstrom

#: dark field starts this many measured edge widths (σ) outside the measured disc radius …
MARGIN_SIGMAS = 4.0
#: … and at least this many pixels outside it (a pixel straddling a sharp edge reaches ~0.7 px past it)
MIN_MARGIN_PX = 1.5
#: a frame whose counts are below this fraction of the session's median counts is blanked (no beam)
BLANKED_FRACTION = 0.1
#: hot pixels: mean counts this many Poisson σ above the brightest of the 8 neighbours …
HOT_PIXEL_SIGMAS = 8.0
#: … and this many times its counts
HOT_PIXEL_RATIO = 1.5
#: dead pixels: mean counts below this fraction of the faintest neighbour where that one is bright
DEAD_PIXEL_FRACTION = 0.2
#: a disc radius that differs from the metadata's by more than this fraction is reported
RADIUS_TOLERANCE = 0.02
#: the background is the mean counts per pixel in the detector's corners (beyond the inscribed
#: circle) of the frames at this quantile of corner counts: vacuum's where vacuum was seen
BACKGROUND_QUANTILE = 0.25


@dataclass(frozen=True)
class DetectorCalibration:
    """The detector geometry measured from ``patterns`` frames.

    centre_px: the disc centre (row, column) at ``reference_angstrom`` (2,) of the scan;
    descan_px_per_angstrom: (2, 2) the centre's shift (row, column) per Å of scan (y, x);
    radius_px, edge_sigma_px: the disc's measured radius and edge width (Gaussian σ);
    nominal_radius_px: α/λ in pixels from the metadata; bad_pixels (M, M) bool: hot or dead,
    never counted; hot_pixels, dead_pixels: how many; background_per_px: flat counts per
    pixel per frame subtracted before counting; median_counts: a frame's median counts from the
    beam (good pixels, background subtracted; a frame under ``BLANKED_FRACTION`` of it is
    blanked); patterns: the frames with beam it was measured on."""

    centre_px: tuple[float, float]
    reference_angstrom: tuple[float, float]
    descan_px_per_angstrom: np.ndarray
    radius_px: float
    edge_sigma_px: float
    nominal_radius_px: float
    bad_pixels: np.ndarray
    hot_pixels: int
    dead_pixels: int
    background_per_px: float
    median_counts: float
    patterns: int

    @property
    def detector_px(self) -> int:
        return int(self.bad_pixels.shape[-1])

    @property
    def dark_field_radius_px(self) -> float:
        """Where dark field starts (px from the disc centre)."""
        return self.radius_px + max(MARGIN_SIGMAS * self.edge_sigma_px, MIN_MARGIN_PX)

    @property
    def dark_field_floor(self) -> float:
        """The least dark-field fraction a pattern can show above its noise: one count, or the
        Poisson noise of the background over the dark-field pixels, over a frame's median counts
        (what zero reads as; the evidence's logarithms start here)."""
        rows, columns = np.indices(self.bad_pixels.shape)
        pixels = float(np.sum((np.hypot(rows - self.centre_px[0], columns - self.centre_px[1])
                               > self.dark_field_radius_px) & ~self.bad_pixels))
        return max(1.0, math.sqrt(self.background_per_px * pixels)) / max(self.median_counts, 1.0)

    @property
    def radius_error(self) -> float:
        """Measured radius / the metadata's − 1 (a semi-angle or detector sampling miscalibration)."""
        return self.radius_px / self.nominal_radius_px - 1.0

    @property
    def radius_disagrees(self) -> bool:
        return abs(self.radius_error) > RADIUS_TOLERANCE

    def centres_px(self, positions_angstrom: np.ndarray) -> np.ndarray:
        """The disc centre (n, 2) (row, column) px of patterns taken at positions (n, 2) Å."""
        offset = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2) - np.asarray(self.reference_angstrom)
        return np.asarray(self.centre_px) + offset @ self.descan_px_per_angstrom.T

    def descan_range_px(self, positions_angstrom: np.ndarray) -> float:
        """How far the disc centre moves over the given positions (n, 2) Å, px."""
        centres = self.centres_px(positions_angstrom)
        return float(np.hypot(*np.ptp(centres, axis=0))) if len(centres) else 0.0

    def summary(self, positions_angstrom: np.ndarray | None = None) -> dict:
        """The estimates as plain numbers (logs, session records, ``inspect``)."""
        record = {"patterns": self.patterns, "centre_px": [round(v, 3) for v in self.centre_px],
                  "radius_px": round(self.radius_px, 3), "nominal_radius_px": round(self.nominal_radius_px, 3),
                  "radius_error": round(self.radius_error, 4), "radius_disagrees": self.radius_disagrees,
                  "edge_sigma_px": round(self.edge_sigma_px, 3),
                  "dark_field_radius_px": round(self.dark_field_radius_px, 3),
                  "descan_px_per_angstrom": np.round(self.descan_px_per_angstrom, 5).tolist(),
                  "hot_pixels": self.hot_pixels, "dead_pixels": self.dead_pixels,
                  "background_per_px": round(self.background_per_px, 5),
                  "median_counts": round(self.median_counts, 1)}
        if positions_angstrom is not None:
            record["descan_range_px"] = round(self.descan_range_px(positions_angstrom), 3)
        return record


def nominal_radius_px(semiangle_mrad: float, energy_ev: float, detector_sampling_inv_angstrom: float) -> float:
    """α/λ in detector pixels, as the metadata says."""
    return mrad_to_inv_angstrom(semiangle_mrad, energy_ev) / detector_sampling_inv_angstrom


def _radius_grid(detector_px: int, centres_px: np.ndarray) -> np.ndarray:
    """Distance (n, M, M) px of every pixel from each centre (n, 2)."""
    index = np.arange(detector_px, dtype=np.float64)
    dy = index[None, :, None] - centres_px[:, 0, None, None]
    dx = index[None, None, :] - centres_px[:, 1, None, None]
    return np.hypot(dy, dx)


def find_bad_pixels(mean_pattern: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Hot and dead pixels (each (M, M) bool) of a mean pattern (M, M) over ``frames`` frames,
    judged against their 8 neighbours: a diffraction pattern is an image through optics, so
    no single pixel stands far above (or below) all of its neighbours.

    Hot: above the brightest neighbour by ``HOT_PIXEL_SIGMAS`` Poisson σ of the mean and by
    ``HOT_PIXEL_RATIO`` of it. Dead: below ``DEAD_PIXEL_FRACTION`` of the faintest neighbour
    where that one has at least one count per frame. (Two adjacent hot pixels shield each other.)"""
    ring = np.ones((3, 3), dtype=bool)
    ring[1, 1] = False
    brightest = ndimage.maximum_filter(mean_pattern, footprint=ring, mode="constant", cval=-np.inf)
    faintest = ndimage.minimum_filter(mean_pattern, footprint=ring, mode="constant", cval=np.inf)
    noise = np.sqrt(np.maximum(brightest, 1.0 / max(frames, 1)) / max(frames, 1))
    hot = (mean_pattern - brightest > HOT_PIXEL_SIGMAS * noise) & (mean_pattern > HOT_PIXEL_RATIO * brightest)
    dead = (faintest >= 1.0) & (mean_pattern < DEAD_PIXEL_FRACTION * faintest)
    return hot, dead


def _edge_profile(radius: np.ndarray, level: float, amplitude: float, radius_px: float,
                  sigma_px: float) -> np.ndarray:
    """The disc's radial profile (module docstring) at radii (n,) px."""
    return level + amplitude * 0.5 * special.erfc((radius - radius_px) / (math.sqrt(2.0) * sigma_px))


def fit_disc(mean_pattern: np.ndarray, good: np.ndarray, centre_guess_px: np.ndarray,
             radius_guess_px: float) -> tuple[np.ndarray, float, float]:
    """The disc's centre (2,) px, radius px and edge σ px in a mean pattern (M, M) over its
    ``good`` pixels: centre from the pixels above half the disc's plateau, then radius and
    edge from a least-squares fit of the edge profile within 0.5–1.6 × the guessed radius."""
    radius_guess = _radius_grid(len(mean_pattern), centre_guess_px[None])[0]
    inner, outer = good & (radius_guess < 0.6 * radius_guess_px), good & (radius_guess > 1.6 * radius_guess_px)
    if not inner.any():
        raise ParameterError("no bright-field disc in the patterns: is the beam on the detector?")
    plateau = float(np.median(mean_pattern[inner]))
    outside = float(np.median(mean_pattern[outer])) if outer.any() else 0.0
    bright = good & (mean_pattern > 0.5 * (plateau + outside))
    labels, count = ndimage.label(bright)
    if count == 0:
        raise ParameterError("no bright-field disc in the patterns: is the beam on the detector?")
    sizes = ndimage.sum(bright, labels, range(1, count + 1))
    disc = labels == 1 + int(np.argmax(sizes))
    centre = np.asarray(ndimage.center_of_mass(disc), dtype=np.float64)
    radius = _radius_grid(len(mean_pattern), centre[None])[0]
    window = good & (radius > 0.5 * radius_guess_px) & (radius < 1.6 * radius_guess_px)
    area_radius = math.sqrt(disc.sum() / math.pi)
    start = (outside, plateau - outside, area_radius, 0.5)
    try:
        (level, amplitude, radius_px, sigma_px), _ = optimize.curve_fit(
            _edge_profile, radius[window], mean_pattern[window], p0=start,
            bounds=([-np.inf, 0.0, 0.3 * radius_guess_px, 0.05], [np.inf, np.inf, 3.0 * radius_guess_px,
                                                                  0.5 * radius_guess_px]), maxfev=2000)
    except (RuntimeError, ValueError):
        radius_px, sigma_px = area_radius, 0.5
    return centre, float(radius_px), float(sigma_px)


def frame_centres(frames: np.ndarray, centre_px: np.ndarray, radius_px: float, good: np.ndarray) -> np.ndarray:
    """Each frame's disc centre (n, 2) px: the centroid of its pixels above half its own disc
    plateau within 1.5 R of ``centre_px`` (the edge sets it, not the intensity inside)."""
    stack = np.asarray(frames, dtype=np.float64)
    radius = _radius_grid(stack.shape[-1], np.asarray(centre_px, dtype=np.float64)[None])[0]
    inner = good & (radius < 0.6 * radius_px)
    window = good & (radius < 1.5 * radius_px)
    plateau = np.median(stack[:, inner], axis=1)
    bright = (stack > 0.5 * plateau[:, None, None]) & window[None]
    weight = bright.sum(axis=(1, 2)).astype(np.float64)
    rows, columns = np.indices(stack.shape[-2:], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = np.stack([(bright * rows).sum(axis=(1, 2)) / weight, (bright * columns).sum(axis=(1, 2)) / weight], 1)
    return np.where(weight[:, None] > 0, centres, np.nan)


def fit_descan(positions_angstrom: np.ndarray, centres_px: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plane through the frames' disc centres (n, 2) px over the scan positions (n, 2) Å:
    (reference position (2,) Å, centre there (2,) px, gradient (2, 2) px/Å). Robust: refit
    once without the frames more than 3 robust σ off (the specimen's own deflection of the
    beam averages out; the drift of the descan does not)."""
    positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
    usable = np.all(np.isfinite(centres_px), axis=1)
    reference = positions[usable].mean(axis=0) if usable.any() else np.zeros(2)
    if usable.sum() < 6 or np.min(np.ptp(positions[usable], axis=0)) <= 0:
        centre = np.nanmedian(centres_px, axis=0) if usable.any() else np.full(2, np.nan)
        return reference, centre, np.zeros((2, 2))
    design = np.column_stack([np.ones(usable.sum()), positions[usable] - reference])
    target = centres_px[usable]
    keep = np.ones(len(target), dtype=bool)
    for _ in range(2):
        solution = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
        residual = np.hypot(*(target - design @ solution).T)
        keep = residual <= 3.0 * 1.4826 * np.median(residual) + 1e-9
    return reference, solution[0], solution[1:].T


def corner_background(frames: np.ndarray, centre_px: np.ndarray, radius_px: float, good: np.ndarray) -> float:
    """The flat background, counts per pixel per frame: the mean of the good pixels beyond the
    detector's inscribed circle over the frames whose annulus between 1.6 R and the inscribed
    circle holds the fewest counts (the ``BACKGROUND_QUANTILE`` of them: where vacuum was
    scanned, its dark counts; on a film also some of its highest-angle scattering, which is
    less per pixel than it scatters nearer the disc). The frames are chosen by the annulus,
    not by the corners, so the corners' own noise does not bias the level low."""
    stack = np.asarray(frames, dtype=np.float64)
    radius = _radius_grid(stack.shape[-1], np.asarray(centre_px)[None])[0]
    corners = good & (radius > stack.shape[-1] / 2)
    annulus = good & (radius > 1.6 * radius_px) & (radius <= stack.shape[-1] / 2)
    if not corners.any():
        return 0.0
    quiet = stack[:, annulus].sum(axis=1) if annulus.any() else np.zeros(len(stack))
    chosen = quiet <= np.quantile(quiet, BACKGROUND_QUANTILE)
    return float(max(stack[chosen][:, corners].mean(), 0.0))


def calibrate(frames: np.ndarray, positions_angstrom: np.ndarray, nominal_radius_px: float) -> DetectorCalibration:
    """Measure the detector's geometry from frames (n, M, M) taken at positions (n, 2) Å,
    starting from the metadata's disc radius ``nominal_radius_px`` at the detector's centre."""
    stack = np.asarray(frames, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[-1] != stack.shape[-2] or len(stack) == 0:
        raise ParameterError(f"calibration needs frames (n, M, M) with n ≥ 1, got {stack.shape}")
    if not (stack.sum(axis=(1, 2)) > 0).any():
        raise ParameterError("the patterns hold no counts: is the beam on the detector?")
    hot, dead = find_bad_pixels(stack.mean(axis=0), len(stack))  # hot pixels count with the beam blanked too
    totals = stack[:, ~hot].sum(axis=1)
    median_counts = float(np.median(totals[totals > 0])) if (totals > 0).any() else 0.0
    lit = totals >= BLANKED_FRACTION * median_counts
    if median_counts <= 0 or lit.sum() == 0:
        raise ParameterError("the patterns hold no counts but in hot pixels: is the beam on the detector?")
    lit_frames = stack[lit]
    mean_pattern = lit_frames.mean(axis=0)
    hot, dead = find_bad_pixels(mean_pattern, len(lit_frames))
    good = ~(hot | dead)
    detector_px = stack.shape[-1]
    guess = np.full(2, detector_px / 2.0)
    cleaned = np.where(good, mean_pattern, ndimage.median_filter(mean_pattern, size=5, mode="nearest"))
    centre, radius_px, sigma_px = fit_disc(cleaned, good, guess, nominal_radius_px)
    background = corner_background(lit_frames, centre, radius_px, good)
    # the beam's own counts (background off): a blanked frame holds only the background's
    signal = stack[:, good].sum(axis=1) - background * good.sum()
    median_signal = float(np.median(signal[signal > 0])) if (signal > 0).any() else median_counts
    beam = signal >= BLANKED_FRACTION * median_signal
    beam = beam if beam.any() else lit
    centres = frame_centres(stack[beam], centre, radius_px, good)
    reference, centre_at_reference, gradient = fit_descan(np.asarray(positions_angstrom)[beam], centres)
    if not np.all(np.isfinite(centre_at_reference)):
        centre_at_reference = centre
    return DetectorCalibration(tuple(float(v) for v in centre_at_reference),  # type: ignore[arg-type]
                               tuple(float(v) for v in reference), gradient,  # type: ignore[arg-type]
                               radius_px, sigma_px, float(nominal_radius_px), ~good, int(hot.sum()), int(dead.sum()),
                               background, median_signal, int(beam.sum()))


def calibrated_dark_field(frames: np.ndarray, positions_angstrom: np.ndarray,
                          calibration: DetectorCalibration) -> np.ndarray:
    """The fraction of each pattern's counts in the dark field, calibrated: frames (n, M, M),
    positions (n, 2) Å → (n,). Counted beyond ``dark_field_radius_px`` from the frame's own
    (descan-corrected) disc centre, bad pixels left out, the flat background subtracted from
    both the dark field and the total. NaN for a blanked frame (no beam: no evidence)."""
    stack = np.asarray(frames, dtype=np.float64)
    if len(stack) == 0:
        return np.zeros(0)
    good = ~calibration.bad_pixels
    outside = (_radius_grid(stack.shape[-1], calibration.centres_px(positions_angstrom))
               > calibration.dark_field_radius_px) & good[None]
    signal = np.where(good[None], stack - calibration.background_per_px, 0.0)
    total = signal.sum(axis=(1, 2))
    blanked = total < BLANKED_FRACTION * calibration.median_counts
    dark = np.where(outside, signal, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.clip(dark / total, calibration.dark_field_floor, 1.0)
    return np.where(blanked | ~(total > 0), np.nan, fraction)
