"""The electron probe: aperture, aberrations, normalisation and sub-pixel shifts.

Conventions: spatial frequencies k in Å⁻¹ (no 2π); ψ(k) = A(k) exp(−i χ(k)); the
real-space probe is centred on pixel (N/2, N/2) of its N × N window and normalised to
Σ_r |ψ(r)|² = 1, so the ortho-normalised far field also sums to one.
"""

from __future__ import annotations

import math
import re

import torch

from ..contracts import ProbeOptics, SamplingGeometry
from ..units import electron_wavelength_angstrom

_COEFFICIENT = re.compile(r"^C(\d)(\d)$")


def frequency_grid_inv_angstrom(window_px: int, pixel_size_angstrom: float,
                                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(k_y, k_x) of an N × N window in FFT order (unshifted), each (N, N), in Å⁻¹."""
    k = torch.fft.fftfreq(window_px, d=pixel_size_angstrom, dtype=torch.float64, device=device)
    return torch.meshgrid(k, k, indexing="ij")


def aberration_phase_rad(k_y: torch.Tensor, k_x: torch.Tensor, optics: ProbeOptics) -> torch.Tensor:
    """χ(k) = (2π/λ) Σ C_nm α^(n+1)/(n+1) cos(m(φ − φ_nm)) with α = λ|k|, φ = atan2(k_y, k_x)."""
    wavelength = electron_wavelength_angstrom(optics.energy_ev)
    alpha = wavelength * torch.sqrt(k_y**2 + k_x**2)
    phi = torch.atan2(k_y, k_x)
    chi = torch.zeros_like(alpha)
    coefficients = optics.coefficients_angstrom()
    for name, value in coefficients.items():
        match = _COEFFICIENT.match(name)
        if match is None or value == 0.0:
            continue
        n, m = int(match.group(1)), int(match.group(2))
        angle = coefficients.get(f"phi{n}{m}", 0.0)
        chi = chi + value * alpha ** (n + 1) / (n + 1) * torch.cos(m * (phi - angle))
    return 2 * math.pi / wavelength * chi


def probe_fourier(optics: ProbeOptics, window_px: int, pixel_size_angstrom: float,
                  device: torch.device | None = None) -> torch.Tensor:
    """Far-field probe A(k) exp(−iχ(k)) (N, N) complex128 in FFT order, hard aperture
    α ≤ semi-angle, scaled so that the real-space probe is centred and unit-norm."""
    k_y, k_x = frequency_grid_inv_angstrom(window_px, pixel_size_angstrom, device)
    wavelength = electron_wavelength_angstrom(optics.energy_ev)
    aperture = (wavelength * torch.sqrt(k_y**2 + k_x**2)) <= optics.semiangle_mrad * 1e-3
    if int(aperture.sum()) < 2:
        raise ValueError("the aperture covers fewer than 2 far-field pixels: the window is too small "
                         "or the semi-angle too small for this sampling")
    field = aperture.to(torch.complex128) * torch.exp(-1j * aberration_phase_rad(k_y, k_x, optics))
    # Centre the real-space probe on pixel N/2: a shift by N/2 is the ramp (−1)^(iy + ix).
    index = torch.arange(window_px, device=device)
    sign = (1 - 2 * ((index[:, None] + index[None, :]) % 2)).to(torch.complex128)
    field = field * sign
    return field / torch.sqrt((field.abs() ** 2).sum())


def probe_real(optics: ProbeOptics, geometry: SamplingGeometry,
               device: torch.device | None = None) -> torch.Tensor:
    """Real-space probe ψ(r) (N, N) complex128, centred on (N/2, N/2), Σ|ψ|² = 1."""
    fourier = probe_fourier(optics, geometry.window_px, geometry.pixel_size_angstrom, device)
    return torch.fft.ifft2(fourier, norm="ortho")


def shift_ramp(fraction_px: torch.Tensor, window_px: int) -> torch.Tensor:
    """Fourier ramps exp(−2πi k·f) (n, N, N) that shift a window's content by f (n, 2) px
    (y, x) towards larger indices; k in cycles per pixel, FFT order."""
    k = torch.fft.fftfreq(window_px, dtype=fraction_px.dtype, device=fraction_px.device)
    phase_y = fraction_px[:, 0, None] * k[None, :]
    phase_x = fraction_px[:, 1, None] * k[None, :]
    ramp_y = torch.exp(-2j * math.pi * phase_y)
    ramp_x = torch.exp(-2j * math.pi * phase_x)
    return ramp_y[:, :, None] * ramp_x[:, None, :]


def shifted_probes(probe_real_space: torch.Tensor, fraction_px: torch.Tensor,
                   probe_index: torch.Tensor | None = None) -> torch.Tensor:
    """Probes shifted by sub-pixel amounts by a Fourier phase ramp.

    probe_real_space: (B, N, N) or (N, N) centred probes; fraction_px: (n, 2) shifts in px;
    probe_index: (n,) which of the B probes each shift applies to (default: probe 0).
    Returns (n, N, N) in the probe's dtype.
    """
    probes = probe_real_space if probe_real_space.ndim == 3 else probe_real_space[None]
    window_px = probes.shape[-1]
    fourier = torch.fft.fft2(probes, norm="ortho")
    if probe_index is None:
        probe_index = torch.zeros(fraction_px.shape[0], dtype=torch.long, device=fraction_px.device)
    real_dtype = torch.float64 if probes.dtype == torch.complex128 else torch.float32
    ramps = shift_ramp(fraction_px.to(real_dtype), window_px)
    return torch.fft.ifft2(fourier[probe_index] * ramps, norm="ortho")
