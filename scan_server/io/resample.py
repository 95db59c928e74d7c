"""The one place where patterns are brought to another reciprocal sampling and size.

A model works at a fixed detector sampling (e.g. 64 px of 0.04759 Å⁻¹); a recording
may have other pixels. ``resample_patterns`` maps counts from (M_in, Δk_in) to
(M_out, Δk_out), zero frequency staying at the centre pixel (M/2) and counts conserved
within the common field:

* Δk_out / Δk_in an integer b: pixels are summed b × b with the forward model's centred
  binning (``physics.forward.bin_far_field``), then the centre is cropped or zero-padded;
* otherwise the count density (counts per Å⁻²) is interpolated (linear) at the output
  pixel centres and multiplied by the output pixel area, after summing by the integer
  part of the ratio when reducing by more than 2.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from scipy import ndimage

from ..contracts import Acquisition
from ..errors import ParameterError
from ..physics.forward import bin_far_field
from .frames import FrameView


def _crop_or_pad(patterns: np.ndarray, size: int) -> np.ndarray:
    m = patterns.shape[-1]
    if m == size:
        return patterns
    out = np.zeros((*patterns.shape[:-2], size, size), dtype=patterns.dtype)
    src0, dst0 = max(m // 2 - size // 2, 0), max(size // 2 - m // 2, 0)
    n = min(m, size)
    out[..., dst0:dst0 + n, dst0:dst0 + n] = patterns[..., src0:src0 + n, src0:src0 + n]
    return out


def _bin(patterns: np.ndarray, factor: int) -> np.ndarray:
    m = patterns.shape[-1]
    padded = _crop_or_pad(patterns, int(np.ceil(m / (2 * factor))) * 2 * factor)
    return bin_far_field(torch.as_tensor(padded, dtype=torch.float64), factor).numpy()


def resample_patterns(patterns: np.ndarray, sampling_in: float, size_out: int, sampling_out: float) -> np.ndarray:
    """(n, M_in, M_in) counts at ``sampling_in`` Å⁻¹ → (n, size_out, size_out) float32."""
    if not (sampling_in > 0 and sampling_out > 0) or size_out < 2:
        raise ParameterError("resampling needs positive samplings and an output of at least 2 px")
    data = np.asarray(patterns, dtype=np.float64)
    ratio = sampling_out / sampling_in
    if np.isclose(ratio, round(ratio), rtol=1e-6) and round(ratio) >= 1:
        return _crop_or_pad(_bin(data, int(round(ratio))), size_out).astype(np.float32)
    pre = int(ratio // 1) if ratio > 2 else 1
    if pre > 1:
        data, sampling_in = _bin(data, pre), sampling_in * pre
    m = data.shape[-1]
    k_out = (np.arange(size_out) - size_out // 2) * sampling_out
    coords = k_out / sampling_in + m // 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    scale = (sampling_out / sampling_in) ** 2
    out = np.stack([ndimage.map_coordinates(frame, [yy, xx], order=1, mode="constant") for frame in data])
    return (out * scale).astype(np.float32)


class ResampledFrames(FrameView):
    """A lazy view that resamples each read to (size_out, Δk_out)."""

    def __init__(self, base: FrameView, sampling_in: float, size_out: int, sampling_out: float) -> None:
        self.base, self.sampling_in, self.sampling_out = base, sampling_in, sampling_out
        self.shape = (base.shape[0], size_out, size_out)  # type: ignore[assignment]
        self.dtype = np.dtype(np.float32)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        return resample_patterns(self.base[indices], self.sampling_in, self.shape[1], self.sampling_out)


def resample_acquisition(acquisition: Acquisition, detector_px: int, sampling_inv_angstrom: float) -> Acquisition:
    """The same recording seen at another detector size and sampling (lazily)."""
    if detector_px == acquisition.detector_px and np.isclose(sampling_inv_angstrom,
                                                             acquisition.detector_sampling_inv_angstrom):
        return acquisition
    frames = ResampledFrames(acquisition.frames, acquisition.detector_sampling_inv_angstrom, detector_px,
                             sampling_inv_angstrom)
    return replace(acquisition, frames=frames, detector_px=detector_px,
                   detector_sampling_inv_angstrom=sampling_inv_angstrom)
