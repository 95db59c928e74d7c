"""What the reconstruction takes from the detector's calibration (``physics.calibration``):
the data made fit for the forward model, and the forward model made fit for the detector.

The forward model (``forward.py``) assumes an ideal detector: the probe's disc centred on the
nominal zero frequency (M/2, M/2), exactly the metadata's semi-angle α, no blur, no
background, every pixel alive. Each assumption is replaced by what the calibration measured:

* **the aperture**: the model's disc is a pixelated hard aperture, and the reconstruction is
  sharply sensitive to which pixels it holds (one ring more or less costs a tenth of the
  agreement with the truth). So the semi-angle is chosen among the distinct pixelated
  apertures near the measured radius as the one that best matches the patterns themselves
  (a vacuum model: the bare probe, tilted by the descan and blurred by the point-spread). A radius off the metadata's is a semi-angle *or* a detector-sampling error, which
  the disc alone cannot tell apart; both are corrected as a semi-angle (the aperture in
  detector pixels is what the forward model needs; a sampling error would also scale the
  reconstruction's pixel by the same few per cent, which costs far less: docs/physics.md).
* **descan**: each pattern's disc centre (the calibration's plane over the scan) minus the
  nominal centre is a tilt of the exit wave, exp(2πi d·r/N): multiplied into each pattern's
  probe, it moves the model's far field by d px exactly (no interpolation of the data).
* **the point-spread**: the measured edge width beyond the model's own (in quadrature) is a
  Gaussian σ px applied to the model's intensities (``blur_fft_order``); below
  ``MIN_PSF_PX`` it is not modelled.
* **background, hot and dead pixels, blanked frames**: the flat background is subtracted from
  the counts, a bad pixel takes the mean of its good neighbours, and a blanked frame (no beam)
  is modelled as a probe of zero intensity: it then neither pulls the estimate nor counts in
  the illumination.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import ndimage

from ..contracts import ProbeOptics, SamplingGeometry
from ..errors import ParameterError
from ..units import electron_wavelength_angstrom
from .calibration import BLANKED_FRACTION, DetectorCalibration, fit_disc, nominal_radius_px
from .forward import detector_intensity, in_fft_order
from .probe import aberration_phase_rad, frequency_grid_inv_angstrom, probe_real

#: what the corrections do changes with this number (ground truths cached under another are made again)
CORRECTION_VERSION = 2
#: a measured point-spread below this σ (px) is not modelled (pixel integration alone is ~0.3 px)
MIN_PSF_PX = 0.25
#: a measured disc radius further than this fraction from the metadata's is refused (not a calibration error)
MAX_RADIUS_ERROR = 0.25
#: apertures within this fraction of the one the measured radius implies are tried
APERTURE_SEARCH = 0.04
#: the aperture is matched on at most this many patterns spread over those given
APERTURE_PATTERNS = 12


@dataclass(frozen=True)
class DetectorCorrection:
    """A calibration turned into corrections of the data and of the forward model.

    semiangle_mrad: the probe's semi-angle whose disc matches the measured one;
    psf_px: the detector's Gaussian point-spread σ (px) on top of the model's own edge
    (0: not modelled); model_edge_sigma_px: the model's own edge width by the same fit."""

    calibration: DetectorCalibration
    semiangle_mrad: float
    psf_px: float
    model_edge_sigma_px: float

    def optics(self, optics: ProbeOptics) -> ProbeOptics:
        """The metadata's optics with the measured semi-angle."""
        return replace(optics, semiangle_mrad=self.semiangle_mrad)

    def descan_px(self, positions_angstrom: np.ndarray) -> np.ndarray:
        """Each pattern's disc centre (n, 2) px (row, column) relative to the nominal one (M/2, M/2)."""
        return self.calibration.centres_px(positions_angstrom) - self.calibration.detector_px / 2.0

    def lit(self, frames: np.ndarray) -> np.ndarray:
        """Which frames (n, M, M) carry the beam (n,) bool: background-subtracted good-pixel counts
        at least ``BLANKED_FRACTION`` of the calibration's median."""
        good = ~self.calibration.bad_pixels
        stack = np.asarray(frames)
        signal = stack.sum(axis=(1, 2), dtype=np.float64) - stack[:, ~good].sum(axis=1, dtype=np.float64) \
            - self.calibration.background_per_px * good.sum()
        return signal >= BLANKED_FRACTION * self.calibration.median_counts

    def clean(self, frames: np.ndarray) -> np.ndarray:
        """Frames (n, M, M) → float32 counts with the background subtracted and each bad pixel
        replaced by the mean of its good 8 neighbours (0 where it has none)."""
        stack = np.asarray(frames, dtype=np.float32) - np.float32(self.calibration.background_per_px)
        bad = self.calibration.bad_pixels
        if not bad.any():
            return stack
        good = (~bad).astype(np.float32)
        ring = np.ones((1, 3, 3), dtype=np.float32)
        ring[0, 1, 1] = 0
        neighbours = ndimage.convolve(stack * good[None], ring, mode="constant")
        weight = ndimage.convolve(good, ring[0], mode="constant")
        filled = np.where(weight > 0, neighbours / np.maximum(weight, 1.0)[None], 0.0)
        return np.where(bad[None], filled, stack).astype(np.float32)

    def clean_tensor(self, counts: torch.Tensor) -> torch.Tensor:
        """``clean`` for counts (n, M, M) already in a tensor (on its device)."""
        return torch.as_tensor(self.clean(counts.cpu().numpy()), device=counts.device)

    def summary(self) -> dict:
        return {"semiangle_mrad": round(self.semiangle_mrad, 4), "psf_px": round(self.psf_px, 3),
                "model_edge_sigma_px": round(self.model_edge_sigma_px, 3)}


def _model_disc(optics: ProbeOptics, geometry: SamplingGeometry) -> tuple[float, float]:
    """The (radius px, edge σ px) that ``fit_disc`` measures on the forward model's own bare probe
    (remembered per optics and geometry: a service's sessions share them)."""
    key = (optics.energy_ev, optics.semiangle_mrad, optics.c10_angstrom, optics.c30_angstrom,
           tuple(sorted(optics.aberrations.items())), geometry)
    known = _MODEL_DISCS.get(key)
    if known is None:
        pattern = detector_intensity(probe_real(optics, geometry)[None], geometry)[0].numpy()
        nominal = nominal_radius_px(optics.semiangle_mrad, optics.energy_ev, geometry.detector_sampling_inv_angstrom)
        _, radius, sigma = fit_disc(pattern, np.ones_like(pattern, dtype=bool), np.full(2, pattern.shape[-1] / 2.0),
                                    nominal)
        if len(_MODEL_DISCS) >= MODEL_DISCS_KEPT:
            _MODEL_DISCS.clear()
        known = _MODEL_DISCS[key] = (radius, sigma)
    return known


#: a pure function's results (optics and geometry → the model disc's fit), at most ``MODEL_DISCS_KEPT``
_MODEL_DISCS: dict[tuple, tuple[float, float]] = {}
MODEL_DISCS_KEPT = 64


def _candidate_probes(optics: ProbeOptics, geometry: SamplingGeometry, low: float, high: float
                      ) -> tuple[np.ndarray, torch.Tensor]:
    """The distinct pixelated apertures with semi-angles within [low, high] mrad: one semi-angle
    (C,) in the middle of each interval that holds the same far-field pixels, and the real-space
    probes (C, N, N) complex64 they make (as ``probe_real``: aberrations, centred, unit norm)."""
    k_y, k_x = frequency_grid_inv_angstrom(geometry.window_px, geometry.pixel_size_angstrom)
    angle_mrad = electron_wavelength_angstrom(optics.energy_ev) * 1e3 * torch.sqrt(k_y**2 + k_x**2)
    steps = np.unique(np.round(angle_mrad.numpy().ravel(), 9))
    edges = np.concatenate([[low], steps[(steps >= low) & (steps <= high)], [high]])
    semiangles = 0.5 * (edges[:-1] + edges[1:])
    index = torch.arange(geometry.window_px)
    centred = (1 - 2 * ((index[:, None] + index[None, :]) % 2)).to(torch.complex128)  # as ``probe_fourier``
    phase = torch.exp(-1j * aberration_phase_rad(k_y, k_x, optics)) * centred
    apertures = angle_mrad[None] <= torch.as_tensor(semiangles)[:, None, None]
    fields = apertures * phase[None]
    fields = fields / torch.sqrt((fields.abs() ** 2).sum(dim=(-2, -1), keepdim=True))
    return semiangles, torch.fft.ifft2(fields, norm="ortho").to(torch.complex64)


def _best_aperture(optics: ProbeOptics, geometry: SamplingGeometry, patterns: torch.Tensor,
                   descan_px: torch.Tensor, psf_px: float, estimate_mrad: float) -> float:
    """The semi-angle (mrad) of the pixelated aperture within ``APERTURE_SEARCH`` of the estimate
    whose vacuum model (the bare probe tilted by each pattern's descan, blurred by the
    point-spread) fits the patterns J (n, M, M) (each normalised to the beam on the detector)
    best in least squares: what the disc's size changes; what the specimen scatters adds the
    same to every candidate."""
    semiangles, probes = _candidate_probes(optics, geometry, estimate_mrad * (1 - APERTURE_SEARCH),
                                           estimate_mrad * (1 + APERTURE_SEARCH))
    lit = torch.ones(len(patterns), dtype=torch.bool)
    tilts = tilt(descan_px, lit, geometry, torch.complex64)
    waves = probes[:, None] * tilts[None]                                          # (C, n, N, N)
    if geometry.upsample == 1:   # in FFT order, as the reconstruction's loss compares them
        far_field = torch.fft.fft2(waves, norm="ortho")
        model = far_field.real**2 + far_field.imag**2
        measured, seen = in_fft_order(patterns.to(model.dtype), geometry.window_px)
    else:                        # binned to the detector's pixels, centred
        model = detector_intensity(waves.reshape(-1, *waves.shape[-2:]), geometry).reshape(
            *waves.shape[:2], *patterns.shape[-2:])
        measured, seen = patterns.to(model.dtype), None
    if psf_px > 0:
        flat = model.reshape(-1, *model.shape[-2:])
        psf = torch.full((len(flat),), psf_px)
        flat = blur_fft_order(flat, psf) if geometry.upsample == 1 else torch.fft.fftshift(
            blur_fft_order(torch.fft.ifftshift(flat, dim=(-2, -1)), psf), dim=(-2, -1))
        model = flat.reshape(model.shape)
    if seen is not None:
        model = model * seen
    on_detector = model.sum(dim=(-2, -1), keepdim=True).mean(dim=1, keepdim=True)
    misfit = ((model - measured[None] * on_detector) ** 2).sum(dim=(1, 2, 3))
    return float(semiangles[int(torch.argmin(misfit))])


def detector_correction(calibration: DetectorCalibration, optics: ProbeOptics, geometry: SamplingGeometry,
                        frames: np.ndarray, positions_angstrom: np.ndarray) -> DetectorCorrection:
    """The corrections a calibration implies for a reconstruction with the metadata's ``optics``
    on ``geometry``, judged on frames (n, M, M) at positions (n, 2) Å (at most
    ``APERTURE_PATTERNS`` of them, spread over those given): the point-spread beyond the model's
    own edge width, and the semi-angle of the pixelated aperture that best matches the patterns
    (``_best_aperture``)."""
    if not calibration.radius_px > 0:
        raise ParameterError(f"the measured disc radius must be positive, got {calibration.radius_px} px")
    scale = calibration.radius_px / calibration.nominal_radius_px
    if abs(scale - 1) > MAX_RADIUS_ERROR:
        raise ParameterError(f"the measured disc radius {calibration.radius_px:.2f} px is more than "
                             f"{MAX_RADIUS_ERROR:.0%} off the metadata's {calibration.nominal_radius_px:.2f} px: "
                             "check the semi-angle, the energy and the detector sampling")
    stack = np.asarray(frames)
    chosen = np.unique(np.linspace(0, len(stack) - 1, min(APERTURE_PATTERNS, len(stack))).round().astype(int))
    measured = DetectorCorrection(calibration, optics.semiangle_mrad, 0.0, 0.0)
    beam = measured.lit(stack[chosen])
    if not beam.any():
        raise ParameterError("no frame with the beam on to match the aperture to")
    cleaned = measured.clean(stack[chosen][beam])
    positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)[chosen][beam]
    model_sigma = _model_disc(optics, geometry)[1]
    # the edge was fitted on the mean of frames whose discs the descan moves: that smear (the
    # centres' variance along a radius, half their 2-D variance) is not the detector's blur
    centres = calibration.centres_px(np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2))
    smear = 0.5 * float(np.var(centres, axis=0).sum()) if len(centres) > 1 else 0.0
    psf = math.sqrt(max(calibration.edge_sigma_px**2 - model_sigma**2 - smear, 0.0))
    psf = psf if psf >= MIN_PSF_PX else 0.0
    patterns = torch.as_tensor(cleaned / max(float(cleaned.sum(axis=(1, 2)).mean()), 1e-30))
    semiangle = _best_aperture(optics, geometry, patterns, torch.as_tensor(measured.descan_px(positions)), psf,
                               optics.semiangle_mrad * scale)
    return DetectorCorrection(calibration, semiangle, psf, model_sigma)


def blur_fft_order(intensity: torch.Tensor, psf_px: torch.Tensor) -> torch.Tensor:
    """Intensities (n, N, N) in FFT order (zero frequency at [0, 0]) blurred by Gaussians of
    σ = psf_px (n,) px each (circular: the few counts at the detector's edge wrap around)."""
    size = intensity.shape[-1]
    u = torch.fft.fftfreq(size, device=intensity.device, dtype=intensity.dtype)
    u2 = u[:, None] ** 2 + u[None, :] ** 2
    transfer = torch.exp(-2 * math.pi**2 * psf_px.to(intensity.dtype)[:, None, None] ** 2 * u2[None])
    return torch.fft.ifft2(torch.fft.fft2(intensity) * transfer).real


def tilt(descan_px: torch.Tensor, lit: torch.Tensor, geometry: SamplingGeometry, dtype: torch.dtype) -> torch.Tensor:
    """Per pattern, the factor (n, N, N) of its probe: the tilt exp(2πi d·r/N) that moves its far
    field by d = descan_px (n, 2) *detector* px (row, column) — ``upsample`` far-field pixels
    each —, times 0 for a blanked frame (lit (n,) bool)."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    window_px = geometry.window_px
    r = torch.arange(window_px, device=descan_px.device, dtype=real) / window_px
    shift = descan_px.to(real) * geometry.upsample
    phase_y = shift[:, 0, None] * r[None, :]
    phase_x = shift[:, 1, None] * r[None, :]
    factor = torch.exp(2j * math.pi * phase_y)[:, :, None] * torch.exp(2j * math.pi * phase_x)[:, None, :]
    return (factor * lit.to(real)[:, None, None]).to(dtype)
