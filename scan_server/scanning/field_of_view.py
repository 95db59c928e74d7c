"""The field of view: the one conversion between a strategy's [0, 1]² coordinates and Å.

Strategies propose positions (y, x) in [0, 1]² of the field of view; microscopes, recordings
and reconstructions work in Å in the scan frame. A ``FieldOfView`` is the rectangle from
``origin_angstrom`` (unit (0, 0)) spanning ``extent_angstrom``; the virtual microscope (a
recording's positions), the service (a session's spec) and the rollout all convert through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contracts import ObjectGrid


@dataclass(frozen=True)
class FieldOfView:
    """A rectangle (y, x) in Å of the scan frame: ``origin_angstrom`` is unit (0, 0),
    ``extent_angstrom`` its size (a zero extent, a single row or column, maps every unit
    coordinate of that axis to the origin)."""

    origin_angstrom: tuple[float, float]
    extent_angstrom: tuple[float, float]

    @classmethod
    def of_positions(cls, positions_angstrom: np.ndarray) -> FieldOfView:
        """The bounding box of positions (n, 2) Å."""
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        low = positions.min(axis=0)
        return cls(tuple(float(v) for v in low), tuple(float(v) for v in positions.max(axis=0) - low))  # type: ignore[arg-type]

    @classmethod
    def from_origin(cls, extent_angstrom: tuple[float, float] | list[float]) -> FieldOfView:
        """A field of view that starts at the scan frame's origin (a session's spec)."""
        return cls((0.0, 0.0), (float(extent_angstrom[0]), float(extent_angstrom[1])))

    def to_angstrom(self, positions_unit: np.ndarray) -> np.ndarray:
        """[0, 1]² (n, 2) → Å (n, 2); unit coordinates outside [0, 1] are clipped to the edge."""
        unit = np.clip(np.asarray(positions_unit, dtype=np.float64), 0.0, 1.0)
        return np.asarray(self.origin_angstrom) + unit * np.asarray(self.extent_angstrom)

    def to_unit(self, positions_angstrom: np.ndarray) -> np.ndarray:
        """Å (n, 2) → [0, 1]² coordinates (not clipped: a landing outside shows as < 0 or > 1)."""
        extent = np.asarray(self.extent_angstrom)
        span = np.where(extent > 0, extent, 1.0)
        return (np.asarray(positions_angstrom, dtype=np.float64) - np.asarray(self.origin_angstrom)) / span

    @property
    def corners_angstrom(self) -> np.ndarray:
        """The first and the last corner, (2, 2) Å."""
        origin = np.asarray(self.origin_angstrom)
        return np.stack([origin, origin + np.asarray(self.extent_angstrom)])

    def region(self, grid: ObjectGrid) -> tuple[slice, slice]:
        """The pixels (y, x) of ``grid`` that the field of view covers."""
        return grid.scan_region(self.corners_angstrom)
