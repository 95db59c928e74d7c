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
from .forward import detector_intensity
from .probe import frequency_grid_inv_angstrom, probe_real

#: what the corrections do changes with this number (ground truths cached under another are made again)
CORRECTION_VERSION = 1
#: a measured point-spread below this σ (px) is not modelled (pixel integration alone is ~0.3 px)
MIN_PSF_PX = 0.25
#: a measured disc radius further than this fraction from the metadata's is refused (not a calibration error)
MAX_RADIUS_ERROR = 0.25
#: apertures within this fraction of the one the measured radius implies are tried
APERTURE_SEARCH = 0.04
#: the aperture is matched on at most this many patterns spread over those given
APERTURE_PATTERNS = 48


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
        stack = np.asarray(frames, dtype=np.float64)
        signal = stack[:, good].sum(axis=1) - self.calibration.background_per_px * good.sum()
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
    """The (radius px, edge σ px) that ``fit_disc`` measures on the forward model's own bare probe."""
    pattern = detector_intensity(probe_real(optics, geometry)[None], geometry)[0].numpy()
    size = pattern.shape[-1]
    nominal = nominal_radius_px(optics.semiangle_mrad, optics.energy_ev, geometry.detector_sampling_inv_angstrom)
    _, radius, sigma = fit_disc(pattern, np.ones_like(pattern, dtype=bool), np.full(2, size / 2.0), nominal)
    return radius, sigma


def _aperture_steps_mrad(optics: ProbeOptics, geometry: SamplingGeometry, low: float, high: float) -> np.ndarray:
    """The semi-angles (mrad) within [low, high] at which the forward model's pixelated aperture
    changes: one candidate in the middle of each interval that holds the same pixels."""
    k_y, k_x = frequency_grid_inv_angstrom(geometry.window_px, geometry.pixel_size_angstrom)
    angles = np.unique(np.round(electron_wavelength_angstrom(optics.energy_ev) * 1e3 * torch.sqrt(k_y**2 + k_x**2)
                                .numpy().ravel(), 9))
    inside = angles[(angles >= low) & (angles <= high)]
    edges = np.concatenate([[low], inside, [high]])
    return 0.5 * (edges[:-1] + edges[1:])


def _pattern_misfit(optics: ProbeOptics, geometry: SamplingGeometry, patterns: torch.Tensor,
                    descan_px: torch.Tensor, psf_px: float) -> float:
    """Σ (model − J)² of a vacuum model (the bare probe, tilted by each pattern's descan and
    blurred by the point-spread) against normalised patterns J (n, M, M): what the disc's size
    changes, the specimen's scattering adds the same to every candidate."""
    probe = probe_real(optics, geometry).to(torch.complex64)
    lit = torch.ones(len(patterns), dtype=torch.bool)
    waves = probe[None] * tilt(descan_px, lit, geometry.window_px, torch.complex64)
    model = detector_intensity(waves, geometry)
    if psf_px > 0:
        model = torch.fft.fftshift(blur_fft_order(torch.fft.ifftshift(model, dim=(-2, -1)),
                                                  torch.full((len(model),), psf_px)), dim=(-2, -1))
    return float(((model - patterns) ** 2).sum())


def detector_correction(calibration: DetectorCalibration, optics: ProbeOptics, geometry: SamplingGeometry,
                        frames: np.ndarray, positions_angstrom: np.ndarray) -> DetectorCorrection:
    """The corrections a calibration implies for a reconstruction with the metadata's ``optics``
    on ``geometry``, judged on frames (n, M, M) at positions (n, 2) Å (at most
    ``APERTURE_PATTERNS`` of them are used): the point-spread beyond the model's own edge
    width, and the semi-angle whose pixelated aperture, tilted by the descan and blurred by that
    point-spread, best matches the patterns (every distinct aperture within
    ``APERTURE_SEARCH`` of the measured radius is tried)."""
    if not calibration.radius_px > 0:
        raise ParameterError(f"the measured disc radius must be positive, got {calibration.radius_px} px")
    scale = calibration.radius_px / calibration.nominal_radius_px
    if abs(scale - 1) > MAX_RADIUS_ERROR:
        raise ParameterError(f"the measured disc radius {calibration.radius_px:.2f} px is more than "
                             f"{MAX_RADIUS_ERROR:.0%} off the metadata's {calibration.nominal_radius_px:.2f} px: "
                             "check the semi-angle, the energy and the detector sampling")
    stack = np.asarray(frames)
    chosen = np.unique(np.linspace(0, len(stack) - 1, min(APERTURE_PATTERNS, len(stack))).round().astype(int))
    probe = DetectorCorrection(calibration, optics.semiangle_mrad, 0.0, 0.0)
    frames_used = probe.clean(stack[chosen])
    positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)[chosen]
    beam = probe.lit(stack[chosen])
    if not beam.any():
        raise ParameterError("no frame with beam to match the aperture to")
    frames_used, positions = frames_used[beam], positions[beam]
    model_sigma = _model_disc(optics, geometry)[1]
    psf = math.sqrt(max(calibration.edge_sigma_px**2 - model_sigma**2, 0.0))
    psf = psf if psf >= MIN_PSF_PX else 0.0
    electrons = float(frames_used.sum(axis=(1, 2)).mean())
    patterns = torch.as_tensor(frames_used / max(electrons, 1e-30))
    descan = torch.as_tensor(probe.descan_px(positions))
    estimate = optics.semiangle_mrad * scale
    candidates = _aperture_steps_mrad(optics, geometry, estimate * (1 - APERTURE_SEARCH),
                                      estimate * (1 + APERTURE_SEARCH))
    misfit = []
    for semiangle in candidates:
        trial = replace(optics, semiangle_mrad=float(semiangle))
        on_detector = float(detector_intensity(probe_real(trial, geometry)[None], geometry).sum())
        misfit.append(_pattern_misfit(trial, geometry, patterns * on_detector, descan, psf))
    semiangle = float(candidates[int(np.argmin(misfit))])
    return DetectorCorrection(calibration, semiangle, psf, model_sigma)


def blur_fft_order(intensity: torch.Tensor, psf_px: torch.Tensor) -> torch.Tensor:
    """Intensities (n, N, N) in FFT order (zero frequency at [0, 0]) blurred by Gaussians of
    σ = psf_px (n,) px each (circular: the few counts at the detector's edge wrap around)."""
    size = intensity.shape[-1]
    u = torch.fft.fftfreq(size, device=intensity.device, dtype=intensity.dtype)
    u2 = u[:, None] ** 2 + u[None, :] ** 2
    transfer = torch.exp(-2 * math.pi**2 * psf_px.to(intensity.dtype)[:, None, None] ** 2 * u2[None])
    return torch.fft.ifft2(torch.fft.fft2(intensity) * transfer).real


def tilt(descan_px: torch.Tensor, lit: torch.Tensor, window_px: int, dtype: torch.dtype) -> torch.Tensor:
    """Per pattern, the factor (n, N, N) of its probe: the tilt exp(2πi d·r/N) that moves its far
    field by d = descan_px (n, 2) px (row, column), times 0 for a blanked frame (lit (n,) bool)."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    r = torch.arange(window_px, device=descan_px.device, dtype=real) / window_px
    phase_y = descan_px[:, 0, None].to(real) * r[None, :]
    phase_x = descan_px[:, 1, None].to(real) * r[None, :]
    factor = torch.exp(2j * math.pi * phase_y)[:, :, None] * torch.exp(2j * math.pi * phase_x)[:, None, :]
    return (factor * lit.to(real)[:, None, None]).to(dtype)
