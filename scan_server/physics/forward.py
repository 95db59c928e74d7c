"""Single-slice forward model (paper eq. 1) at arbitrary sub-pixel positions, batched.

I_p(k) = D[ |F[ψ(r − R_p) · t(r)]|² ] with t = exp(i V), V complex (real part: phase in
rad, i.e. σ·v_z; imaginary part: absorption). F is the unitary 2-D DFT with the zero
frequency moved to the centre; D bins the far field by ``upsample`` (trapezoid weights
for even factors, so detector pixel centres stay on the optical axis) and crops its
centre to the detector. A position R_p is split into the integer top-left pixel of its
probe window and a sub-pixel remainder applied to the probe by a Fourier phase ramp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..contracts import ObjectGrid, SamplingGeometry
from ..errors import ParameterError
from .probe import shifted_probes


@dataclass(frozen=True)
class WindowPlan:
    """Where each measured pattern's probe window sits.

    batch_index: (n,) which object of a batch; corner_px: (n, 2) integer top-left pixel;
    fraction_px: (n, 2) sub-pixel shift of the probe inside the window, in [0, 1).
    """

    batch_index: torch.Tensor
    corner_px: torch.Tensor
    fraction_px: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.batch_index.shape[0])

    def chunk(self, start: int, stop: int) -> WindowPlan:
        return WindowPlan(self.batch_index[start:stop], self.corner_px[start:stop], self.fraction_px[start:stop])

    @classmethod
    def for_positions(cls, grid: ObjectGrid, geometry: SamplingGeometry, positions_angstrom: np.ndarray,
                      batch_index: np.ndarray | None = None, device: torch.device | None = None) -> WindowPlan:
        corner, fraction = grid.window_corners(positions_angstrom, geometry.window_px)
        if batch_index is None:
            batch_index = np.zeros(len(corner), dtype=np.int64)
        return cls(batch_index=torch.as_tensor(batch_index, dtype=torch.long, device=device),
                   corner_px=torch.as_tensor(corner, dtype=torch.long, device=device),
                   fraction_px=torch.as_tensor(fraction, dtype=torch.float64, device=device))


def window_flat_index(plan: WindowPlan, object_shape: tuple[int, int], window_px: int) -> torch.Tensor:
    """Flat indices (n, N, N) into a (B, H, W) batch of objects for every probe window."""
    height, width = object_shape
    device = plan.corner_px.device
    base = plan.batch_index * (height * width) + plan.corner_px[:, 0] * width + plan.corner_px[:, 1]
    offsets = torch.arange(window_px, device=device)
    offsets = offsets[:, None] * width + offsets[None, :]
    return base[:, None, None] + offsets[None]


def accumulate_windows(target: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """target.flat[index] += values, summing repeated indices, reproducibly: on the CPU by
    ``index_add_`` (``index_put_``'s accumulation there is threaded and not bitwise
    reproducible), on CUDA by ``index_put_``, which has a deterministic kernel under
    ``device.deterministic``. ``target``: contiguous; index and values of equal shape."""
    flat = target.view(-1)
    if target.is_cuda:
        flat.index_put_((index.reshape(-1),), values.reshape(-1), accumulate=True)
    else:
        flat.index_add_(0, index.reshape(-1), values.reshape(-1))
    return target


def _bin_axis(intensity: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """Sum ``factor`` far-field pixels into one along ``dim`` so that the bin containing
    the zero frequency is centred on it (trapezoid weights 1/2, 1, …, 1, 1/2 for even factors)."""

    dim = dim % intensity.ndim

    def box(shift: int) -> torch.Tensor:
        rolled = torch.roll(intensity, shifts=shift, dims=dim)
        shape = list(rolled.shape)
        shape[dim:dim + 1] = [shape[dim] // factor, factor]
        return rolled.reshape(shape).sum(dim=dim + 1)

    if factor % 2:
        return box(factor // 2)
    return 0.5 * (box(factor // 2) + box(factor // 2 - 1))


def bin_far_field(intensity: torch.Tensor, factor: int) -> torch.Tensor:
    """(..., N, N) centred intensities → (..., N/factor, N/factor), total intensity conserved."""
    if factor == 1:
        return intensity
    return _bin_axis(_bin_axis(intensity, factor, -2), factor, -1)


def crop_centre(intensity: torch.Tensor, size_px: int) -> torch.Tensor:
    """Central ``size_px`` × ``size_px`` of centred (..., L, L) patterns (zero frequency at L/2)."""
    length = intensity.shape[-1]
    start = length // 2 - size_px // 2
    return intensity[..., start:start + size_px, start:start + size_px]


def centred_far_field(exit_wave: torch.Tensor, size_px: int) -> torch.Tensor:
    """Central ``size_px`` × ``size_px`` of F[exit] (unitary DFT), zero frequency at size_px/2.

    Only the frequencies the detector sees are gathered (no full fftshift)."""
    window_px = exit_wave.shape[-1]
    far_field = torch.fft.fft2(exit_wave, norm="ortho")
    if size_px >= window_px:
        return torch.fft.fftshift(far_field, dim=(-2, -1))
    index = (torch.arange(size_px, device=exit_wave.device) - size_px // 2) % window_px
    return far_field[..., index, :][..., index]


def detector_intensity(exit_wave: torch.Tensor, geometry: SamplingGeometry) -> torch.Tensor:
    """Exit waves (n, N, N) → recorded patterns (n, M, M) as fractions of the incident beam.

    With upsampling, a margin of one detector pixel is kept around the detector while
    binning, so the binning's periodic wrap never reaches the recorded pixels."""
    u, m = geometry.upsample, geometry.detector_px
    size = min((m + 2) * u, geometry.window_px) if u > 1 else m
    far_field = centred_far_field(exit_wave, size)
    intensity = far_field.real**2 + far_field.imag**2
    return crop_centre(bin_far_field(intensity, u), m)


def forward_patterns(transmission: torch.Tensor, probes: torch.Tensor, plan: WindowPlan,
                     geometry: SamplingGeometry, probe_index: torch.Tensor | None = None) -> torch.Tensor:
    """Patterns (n, M, M) for every window of ``plan``.

    transmission: (B, H, W) complex t(r); probes: (B', N, N) or (N, N) centred real-space
    probes; probe_index: (n,) which probe each pattern uses (default: ``plan.batch_index``
    when there is one probe per object, else probe 0). Differentiable in ``transmission``.
    """
    n_probes = 1 if probes.ndim == 2 else probes.shape[0]
    if probe_index is None:
        probe_index = plan.batch_index if n_probes > 1 else torch.zeros_like(plan.batch_index)
    shifted = shifted_probes(probes, plan.fraction_px, probe_index)
    index = window_flat_index(plan, tuple(transmission.shape[-2:]), geometry.window_px)
    windows = transmission.reshape(-1)[index]
    return detector_intensity(shifted.to(windows.dtype) * windows, geometry)


def poisson_counts(intensity: torch.Tensor, electrons_per_pattern: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Poisson-distributed counts for patterns given as fractions of the incident beam."""
    if not electrons_per_pattern > 0:
        raise ParameterError(f"dose must be positive, got {electrons_per_pattern} electrons per pattern")
    rate = (intensity.clamp_min(0) * electrons_per_pattern).to(torch.float64)
    return torch.poisson(rate, generator=generator)


def in_fft_order(patterns: torch.Tensor, window_px: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Centred patterns (n, M, M) → (n, N, N) in the unshifted order of an N-point FFT, and the
    mask of the detector's frequencies (``None`` when the detector sees all N × N)."""
    size = patterns.shape[-1]
    index = (torch.arange(size, device=patterns.device) - size // 2) % window_px
    if size == window_px:
        return patterns[..., torch.argsort(index), :][..., torch.argsort(index)], None
    placed = patterns.new_zeros((*patterns.shape[:-2], window_px, window_px))
    placed[..., index[:, None], index[None, :]] = patterns
    seen = torch.zeros((window_px, window_px), dtype=patterns.dtype, device=patterns.device)
    seen[index[:, None], index[None, :]] = 1
    return placed, seen
