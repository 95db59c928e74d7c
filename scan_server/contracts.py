"""Frozen dataclasses passed between the stages (no untyped dicts across modules).

Conventions: lengths in Å, energies in eV, angles in mrad; array axes ``(..., y, x)``;
scan positions ``(y, x)`` in Å in the scan frame, origin at the first scan corner;
diffraction patterns stored as recorded, zero frequency at the centre.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import GeometryError, ParameterError


@dataclass(frozen=True)
class ProbeOptics:
    """Electron optics of the probe.

    Aberrations follow Krivanek's polar notation: the phase error is
    χ(α, φ) = (2π/λ) Σ C_nm α^(n+1)/(n+1) cos(m(φ − φ_nm)), with ψ(k) = A(k) exp(−iχ).
    ``c10_angstrom`` is C10 = −defocus (positive C10 = overfocus, abTEM's convention);
    ``c30_angstrom`` is the spherical aberration Cs. ``aberrations`` holds further
    coefficients by name: ``C12``, ``C21``, ``C23``, ``C32``, ``C34``, ``C41`` … in Å and
    their angles ``phi12``, ``phi21`` … in rad.
    """

    energy_ev: float
    semiangle_mrad: float
    c10_angstrom: float = 0.0
    c30_angstrom: float = 0.0
    aberrations: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.energy_ev > 0:
            raise ParameterError(f"beam energy must be positive, got {self.energy_ev} eV")
        if not self.semiangle_mrad > 0:
            raise ParameterError(f"convergence semi-angle must be positive, got {self.semiangle_mrad} mrad")
        for name in self.aberrations:
            if not (name.startswith("C") or name.startswith("phi")) or not name[-2:].isdigit():
                raise ParameterError(f"unknown aberration {name!r}: use Cnm (Å) or phinm (rad), e.g. C12, phi12")

    def coefficients_angstrom(self) -> dict[str, float]:
        """All C_nm (Å) and φ_nm (rad) as one mapping, C10 and C30 included."""
        merged = {"C10": self.c10_angstrom, "C30": self.c30_angstrom}
        merged.update(self.aberrations)
        return merged


@dataclass(frozen=True)
class SamplingGeometry:
    """Real- and reciprocal-space sampling of the forward model.

    The detector records ``detector_px`` × ``detector_px`` pixels of
    ``detector_sampling_inv_angstrom`` each. The model's far field is sampled
    ``upsample`` times finer (a probe window ``upsample`` times larger in real space)
    and binned back to the detector pixels, which models the intensity integrated over
    each detector pixel. ``oversample`` makes the real-space pixel that many times finer
    than the detector's Nyquist pixel 1/(detector_px · Δk): the far field then reaches
    beyond the detector and its centre is cropped to the detector.
    """

    detector_px: int
    detector_sampling_inv_angstrom: float
    upsample: int = 1
    oversample: int = 1

    def __post_init__(self) -> None:
        if self.detector_px < 4 or self.detector_px % 2:
            raise GeometryError(f"detector size must be an even number ≥ 4 of pixels, got {self.detector_px}")
        if not self.detector_sampling_inv_angstrom > 0:
            raise GeometryError(
                f"detector sampling must be positive, got {self.detector_sampling_inv_angstrom} Å⁻¹")
        for name in ("upsample", "oversample"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise GeometryError(f"{name} must be an integer ≥ 1, got {value!r}")

    @property
    def window_px(self) -> int:
        """Side of the square probe window (and of the computed far field) in pixels."""
        return self.detector_px * self.upsample * self.oversample

    @property
    def pixel_size_angstrom(self) -> float:
        """Real-space pixel of the object and probe window, in Å."""
        return 1.0 / (self.oversample * self.detector_px * self.detector_sampling_inv_angstrom)


@dataclass(frozen=True)
class ObjectGrid:
    """The reconstructed (or simulated) object: ``shape_px`` pixels of ``pixel_size_angstrom``;
    ``origin_angstrom`` is the scan-frame position (y, x) of pixel (0, 0)'s centre."""

    shape_px: tuple[int, int]
    pixel_size_angstrom: float
    origin_angstrom: tuple[float, float]

    @classmethod
    def covering(cls, positions_angstrom: np.ndarray, geometry: SamplingGeometry,
                 margin_px: int = 2) -> ObjectGrid:
        """The smallest grid whose probe windows at every position fit, plus a margin."""
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        if positions.size == 0:
            raise GeometryError("no scan positions given")
        dx = geometry.pixel_size_angstrom
        low = positions.min(axis=0)
        extent_px = np.ceil((positions.max(axis=0) - low) / dx).astype(int)
        half = geometry.window_px // 2
        shape = tuple(int(e) + geometry.window_px + 2 * margin_px + 1 for e in extent_px)
        origin = tuple(float(v) for v in low - (half + margin_px) * dx)
        return cls(shape_px=shape, pixel_size_angstrom=dx, origin_angstrom=origin)  # type: ignore[arg-type]

    def window_corners(self, positions_angstrom: np.ndarray, window_px: int) -> tuple[np.ndarray, np.ndarray]:
        """Integer top-left pixel (n, 2) and fractional shift in [0, 1) px (n, 2) of the
        probe window centred on each position. Raises GeometryError if one leaves the grid."""
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        centre_px = (positions - np.asarray(self.origin_angstrom)) / self.pixel_size_angstrom
        corner = centre_px - window_px // 2
        integer = np.floor(corner).astype(np.int64)
        fraction = corner - integer
        too_low = (integer < 0).any(axis=1)
        too_high = (integer + window_px > np.asarray(self.shape_px)).any(axis=1)
        if too_low.any() or too_high.any():
            bad = int(np.flatnonzero(too_low | too_high)[0])
            raise GeometryError(
                f"the probe window ({window_px} px) at position {positions[bad].round(3).tolist()} Å "
                f"does not fit in the object grid {list(self.shape_px)} px; enlarge the object or "
                "reduce the window (probe window larger than the object?)")
        return integer, fraction

    def scan_region(self, positions_angstrom: np.ndarray) -> tuple[slice, slice]:
        """Pixel slices (y, x) of the scanned field of view (bounding box of the positions)."""
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        low = (positions.min(axis=0) - np.asarray(self.origin_angstrom)) / self.pixel_size_angstrom
        high = (positions.max(axis=0) - np.asarray(self.origin_angstrom)) / self.pixel_size_angstrom
        start = np.floor(low).astype(int)
        stop = np.ceil(high).astype(int) + 1
        return slice(int(start[0]), int(stop[0])), slice(int(start[1]), int(stop[1]))


@dataclass(frozen=True)
class RasterScan:
    """A regular grid of ``shape`` (ny, nx) positions with ``step_angstrom`` spacing."""

    shape: tuple[int, int]
    step_angstrom: float

    def __post_init__(self) -> None:
        if min(self.shape) < 1:
            raise GeometryError(f"scan shape must be positive, got {self.shape}")
        if not self.step_angstrom > 0:
            raise GeometryError(f"scan step must be positive, got {self.step_angstrom} Å")

    @property
    def count(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def extent_angstrom(self) -> tuple[float, float]:
        """Field of view (y, x) from the first to the last position, in Å."""
        return ((self.shape[0] - 1) * self.step_angstrom, (self.shape[1] - 1) * self.step_angstrom)

    def positions_angstrom(self) -> np.ndarray:
        """(ny·nx, 2) positions (y, x) in trigger order (row by row), origin at the first corner."""
        y = np.arange(self.shape[0]) * self.step_angstrom
        x = np.arange(self.shape[1]) * self.step_angstrom
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)


@dataclass(frozen=True)
class GroundTruth:
    """The specimen's true phase σ·v_z (rad) on its own grid."""

    phase_rad: np.ndarray
    grid: ObjectGrid


@dataclass(frozen=True)
class Acquisition:
    """One recording, whatever file it came from.

    ``frames`` is (N, M, M) counts, zero frequency at the centre; it may be a lazy view
    (an h5py data set) — index it, do not assume it is in memory.
    ``electrons_per_pattern`` is the expected beam current per pattern when known.
    """

    frames: Any
    positions_angstrom: np.ndarray
    optics: ProbeOptics
    detector_px: int
    detector_sampling_inv_angstrom: float
    scan: RasterScan | None = None
    electrons_per_pattern: float | None = None
    ground_truth: GroundTruth | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.positions_angstrom.shape[0])

    @property
    def field_of_view_angstrom2(self) -> float:
        extent = np.ptp(self.positions_angstrom, axis=0)
        return float(max(extent[0], 1e-9) * max(extent[1], 1e-9))

    def dose_e_per_angstrom2(self, n_positions: int | None = None) -> float | None:
        """Dose over the scanned field of view when ``n_positions`` patterns are used."""
        if self.electrons_per_pattern is None:
            return None
        n = self.count if n_positions is None else n_positions
        return self.electrons_per_pattern * n / self.field_of_view_angstrom2


def dose_to_electrons_per_pattern(dose_e_per_angstrom2: float, n_positions: int,
                                  field_of_view_angstrom2: float) -> float:
    """Electrons per pattern that deliver ``dose`` over the field of view with n positions."""
    if not dose_e_per_angstrom2 > 0:
        raise ParameterError(f"dose must be positive, got {dose_e_per_angstrom2} e⁻/Å²")
    return dose_e_per_angstrom2 * field_of_view_angstrom2 / n_positions

