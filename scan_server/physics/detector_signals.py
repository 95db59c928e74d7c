"""Signals the detector gives per pattern, before any reconstruction: the dark-field fraction.

A pattern's counts inside the bright-field disc (scattering angles up to the probe's
semi-angle α, i.e. |k| ≤ α/λ) are the unscattered beam and the low-angle interference of
the probe with the specimen; counts outside are scattered by the specimen. In vacuum a
pattern is the probe's own far field (zero outside the disc up to its edge's blur and
noise); over matter the dark-field fraction rises by one to two orders of magnitude
(docs/adaptive.md). It is the cheapest evidence of where the material is.
"""

from __future__ import annotations

import numpy as np

from ..contracts import Acquisition, ProbeOptics
from ..units import mrad_to_inv_angstrom


def bright_field_disc(detector_px: int, detector_sampling_inv_angstrom: float, optics: ProbeOptics) -> np.ndarray:
    """(M, M) bool: the detector pixels within the bright-field disc (zero frequency at pixel
    (M/2, M/2), as every frame is stored)."""
    k_inv_angstrom = (np.arange(detector_px) - detector_px // 2) * detector_sampling_inv_angstrom
    radius = np.hypot(k_inv_angstrom[:, None], k_inv_angstrom[None, :])
    return radius <= mrad_to_inv_angstrom(optics.semiangle_mrad, optics.energy_ev)


def dark_field_fraction(frames: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """The fraction of each pattern's counts outside the bright-field disc: frames (n, M, M)
    counts, disc (M, M) bool → (n,) in [0, 1] (0 for a pattern without counts)."""
    patterns = np.asarray(frames, dtype=np.float64).reshape(len(frames), -1)
    inside = disc.reshape(-1)
    total = patterns.sum(axis=1)
    outside = patterns[:, ~inside].sum(axis=1)
    return np.divide(outside, total, out=np.zeros_like(total), where=total > 0)


def recording_dark_field(acquisition: Acquisition, chunk: int = 1024) -> np.ndarray:
    """The dark-field fraction (N,) of every pattern of a recording, read ``chunk`` at a time."""
    disc = bright_field_disc(acquisition.detector_px, acquisition.detector_sampling_inv_angstrom, acquisition.optics)
    return np.concatenate([dark_field_fraction(np.asarray(acquisition.frames[start:start + chunk]), disc)
                           for start in range(0, acquisition.count, chunk)])
