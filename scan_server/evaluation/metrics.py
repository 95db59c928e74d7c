"""Metrics used by every evaluation.

* SSIM (scikit-image) between phases over the scanned field of view. The absolute phase
  is unobservable in ptychography (exp(i(V + c)) gives the same patterns up to a global
  phase), so each image's mean over the region is removed before comparing.
* Resolution from the diffractogram: the finest reflection whose power stands above the
  speckle of its own frequency ring (see ``resolution_angstrom``).
* Q = (a − b) / b, the relative improvement of a over b.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from ..contracts import GroundTruth, ObjectGrid
from ..errors import ParameterError


def relative_improvement(a: float, b: float) -> float:
    """Q = (a − b) / b (paper: Q_SSIM, Q_res)."""
    if b == 0:
        raise ParameterError("relative improvement is undefined for a zero baseline")
    return (a - b) / b


def resample_to_grid(truth: GroundTruth, grid: ObjectGrid) -> np.ndarray:
    """The true phase on another grid: low-passed to that grid's Nyquist frequency (raised
    cosine from 0.8 to 1.0 of it) so that coarser grids compare like with like, then
    interpolated (cubic spline) at the grid's pixel centres. Pixels outside the truth are 0."""
    image = np.asarray(truth.phase_rad, dtype=np.float64)
    nyquist = 0.5 / grid.pixel_size_angstrom
    if nyquist < 0.5 / truth.grid.pixel_size_angstrom:
        q_y = np.fft.fftfreq(image.shape[0], truth.grid.pixel_size_angstrom)
        q_x = np.fft.fftfreq(image.shape[1], truth.grid.pixel_size_angstrom)
        q = np.hypot(q_y[:, None], q_x[None, :]) / nyquist
        taper = np.clip((1.0 - q) / 0.2, 0.0, 1.0)
        taper = 0.5 - 0.5 * np.cos(np.pi * taper)
        image = np.fft.ifft2(np.fft.fft2(image) * taper).real
    y = np.arange(grid.shape_px[0]) * grid.pixel_size_angstrom + grid.origin_angstrom[0]
    x = np.arange(grid.shape_px[1]) * grid.pixel_size_angstrom + grid.origin_angstrom[1]
    rows = (y - truth.grid.origin_angstrom[0]) / truth.grid.pixel_size_angstrom
    cols = (x - truth.grid.origin_angstrom[1]) / truth.grid.pixel_size_angstrom
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(image, [yy, xx], order=3, mode="constant", cval=0.0)


def ssim_phase(phase: np.ndarray, reference: np.ndarray, region: tuple[slice, slice]) -> float:
    """SSIM of ``phase`` against ``reference`` (both (H, W), same grid) over ``region``,
    offsets removed, data range taken from the reference."""
    a = np.asarray(phase, dtype=np.float64)[region]
    b = np.asarray(reference, dtype=np.float64)[region]
    if a.shape != b.shape or min(a.shape) < 7:
        raise ParameterError(f"SSIM needs two equal regions of at least 7 × 7 px, got {a.shape} and {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    data_range = float(b.max() - b.min())
    if data_range == 0:
        raise ParameterError("the reference phase is constant over the region: SSIM is undefined")
    return float(structural_similarity(a, b, data_range=data_range))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays (offset- and scale-invariant)."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def diffractogram(image: np.ndarray, pixel_size_angstrom: float) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum |F[w · (image − mean)]|² (centred, Hann window w) and |q| (Å⁻¹) per pixel."""
    data = np.asarray(image, dtype=np.float64)
    data = data - data.mean()
    window = np.outer(np.hanning(data.shape[0]), np.hanning(data.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(data * window))) ** 2
    q_y = np.fft.fftshift(np.fft.fftfreq(data.shape[0], pixel_size_angstrom))
    q_x = np.fft.fftshift(np.fft.fftfreq(data.shape[1], pixel_size_angstrom))
    return power, np.hypot(q_y[:, None], q_x[None, :])


def significant_reflections(image: np.ndarray, pixel_size_angstrom: float,
                            threshold: float = 20.0) -> np.ndarray:
    """|q| (Å⁻¹) of the diffractogram's significant peaks.

    A peak is a local maximum (3 × 3) whose power exceeds ``threshold`` × the median power
    of its frequency ring (rings one pixel wide). For speckle-like noise the power in a
    pixel is exponentially distributed, so it exceeds t × median with probability 2^−t:
    t = 20 gives about one false peak per million pixels. The central peak (|q| below
    two frequency pixels) is excluded.
    """
    power, q = diffractogram(image, pixel_size_angstrom)
    dq = 1.0 / (max(image.shape) * pixel_size_angstrom)
    ring = np.rint(q / dq).astype(int)
    median = ndimage.median(power, labels=ring, index=np.arange(ring.max() + 1))
    background = np.asarray(median)[ring]
    is_peak = (power == ndimage.maximum_filter(power, size=3)) & (power > threshold * background)
    is_peak &= ring >= 2
    return q[is_peak]


def resolution_angstrom(image: np.ndarray, pixel_size_angstrom: float, threshold: float = 20.0) -> float | None:
    """1 / |q| of the finest significant reflection, in Å; ``None`` if nothing stands out."""
    q = significant_reflections(image, pixel_size_angstrom, threshold)
    return float(1.0 / q.max()) if q.size else None
