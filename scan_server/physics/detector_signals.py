"""Signals the detector gives per pattern, before any reconstruction: the dark-field fraction.

A pattern's counts inside the bright-field disc (scattering angles up to the probe's
semi-angle α) are the unscattered beam and the low-angle interference of the probe with
the specimen; counts outside are scattered by the specimen. In vacuum a pattern is the
probe's own far field (nothing outside the disc beyond its edge's blur and the detector's
background); over matter the dark-field fraction rises by one to three orders of magnitude.
It is the cheapest evidence of where the material is.

The disc is the one **measured** from the patterns (``physics.calibration``: centre,
descan, radius, edge width, bad pixels, background), never the metadata's: a real
detector's blurred edge or a few per cent of miscalibration put ~1 % of a vacuum pattern's
counts just outside the nominal radius, as much as many materials scatter.

Two ways to meter a scan: ``recording_dark_field`` calibrates on a spread of a whole
recording's patterns (the value map's training labels, evaluations); a ``DarkFieldMeter``
calibrates on a session's own patterns as they arrive (the service, rollouts), refitting on
everything it has seen until ``SETTLE_PATTERNS`` patterns, then keeping that calibration.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..contracts import Acquisition, SamplingGeometry
from ..errors import ParameterError
from .calibration import DetectorCalibration, calibrate, calibrated_dark_field, nominal_radius_px
from .detector_correction import DetectorCorrection, detector_correction

#: a meter refits its calibration on every batch until it has seen this many patterns, then keeps it
SETTLE_PATTERNS = 200
#: ``recording_dark_field`` calibrates on at most this many patterns spread over the recording
RECORDING_CALIBRATION_PATTERNS = 512


def acquisition_nominal_radius_px(acquisition: Acquisition) -> float:
    """The disc radius (px) the recording's metadata implies."""
    return nominal_radius_px(acquisition.optics.semiangle_mrad, acquisition.optics.energy_ev,
                             acquisition.detector_sampling_inv_angstrom)


def _spread_sample(acquisition: Acquisition, patterns: int) -> tuple[np.ndarray, np.ndarray]:
    """``patterns`` frames (n, M, M) and their positions (n, 2) Å spread evenly over the acquisition order."""
    chosen = np.unique(np.linspace(0, acquisition.count - 1, min(patterns, acquisition.count)).round().astype(int))
    return np.stack([np.asarray(acquisition.frames[int(i)]) for i in chosen]), acquisition.positions_angstrom[chosen]


def calibrate_recording(acquisition: Acquisition,
                        patterns: int = RECORDING_CALIBRATION_PATTERNS) -> DetectorCalibration:
    """The detector calibration of a recording, measured on ``patterns`` of its patterns
    spread evenly over its acquisition order."""
    frames, positions = _spread_sample(acquisition, patterns)
    return calibrate(frames, positions, acquisition_nominal_radius_px(acquisition))


def recording_correction(acquisition: Acquisition, geometry: SamplingGeometry,
                         patterns: int = RECORDING_CALIBRATION_PATTERNS) -> DetectorCorrection:
    """The detector's corrections for reconstructing a recording on ``geometry``, calibrated
    and matched on ``patterns`` of its patterns spread over the acquisition order."""
    frames, positions = _spread_sample(acquisition, patterns)
    calibration = calibrate(frames, positions, acquisition_nominal_radius_px(acquisition))
    return detector_correction(calibration, acquisition.optics, geometry, frames, positions)


def recording_correction_or_none(acquisition: Acquisition, geometry: SamplingGeometry) -> DetectorCorrection | None:
    """``recording_correction``, or ``None`` with a warning where the disc is too far off the
    metadata's (or too faint) to correct: the recording is then reconstructed as the metadata says."""
    try:
        return recording_correction(acquisition, geometry)
    except ParameterError as error:
        warnings.warn(f"reconstructed without detector corrections: {error}", stacklevel=2)
        return None


def recording_dark_field(acquisition: Acquisition, chunk: int = 1024,
                         calibration: DetectorCalibration | None = None) -> np.ndarray:
    """The calibrated dark-field fraction (N,) of every pattern of a recording (NaN where
    blanked), read ``chunk`` at a time; calibrated on the recording unless given."""
    calibration = calibration or calibrate_recording(acquisition)
    return np.concatenate([
        calibrated_dark_field(np.asarray(acquisition.frames[start:start + chunk]),
                              acquisition.positions_angstrom[start:start + chunk], calibration)
        for start in range(0, acquisition.count, chunk)])


class DarkFieldMeter:
    """A scan's calibrated dark-field fractions, in acquisition order. ``add`` each batch;
    ``fractions`` are those of every pattern so far (NaN: a frame without beam, or none
    calibrated yet). Until it has calibrated on ``SETTLE_PATTERNS`` frames with counts it
    refits on every batch on the latest ``SETTLE_PATTERNS`` of them (never more: memory and
    time per batch stay bounded whatever comes) and re-meters those; then it keeps that
    calibration."""

    def __init__(self, nominal_radius_px: float) -> None:
        if not nominal_radius_px > 0:
            raise ParameterError(f"the nominal disc radius must be positive, got {nominal_radius_px} px")
        self.nominal_radius_px = float(nominal_radius_px)
        self.calibration: DetectorCalibration | None = None
        self._kept: list[tuple[int, np.ndarray, np.ndarray]] = []  # (index, frame (M, M), position (2,))
        self._fractions = np.zeros(0)
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    @property
    def count(self) -> int:
        return len(self._fractions)

    @property
    def kept(self) -> int:
        """Frames held for calibrating (at most ``SETTLE_PATTERNS``)."""
        return len(self._kept)

    def add(self, frames: np.ndarray, positions_angstrom: np.ndarray) -> np.ndarray:
        """Meter a batch: frames (n, M, M) counts at positions (n, 2) Å; returns its fractions (n,)."""
        frames = np.asarray(frames)
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        if len(frames) != len(positions):
            raise ParameterError(f"{len(frames)} frames but {len(positions)} positions")
        start = len(self._fractions)
        self._fractions = np.concatenate([self._fractions, np.full(len(frames), np.nan)])
        if not self._settled:
            lit = np.flatnonzero(frames.reshape(len(frames), -1).sum(axis=1) > 0) if len(frames) else []
            self._kept = (self._kept + [(start + i, frames[i], positions[i]) for i in lit])[-SETTLE_PATTERNS:]
            self._recalibrate()
        if self.calibration is not None:
            self._fractions[start:] = calibrated_dark_field(frames, positions, self.calibration)
        return self._fractions[start:]

    def _recalibrate(self) -> None:
        """Refit on the kept frames and re-meter them; settle once there are enough."""
        if not self._kept:
            return
        index = np.asarray([k[0] for k in self._kept])
        frames, positions = np.stack([k[1] for k in self._kept]), np.stack([k[2] for k in self._kept])
        try:
            self.calibration = calibrate(frames, positions, self.nominal_radius_px)
        except ParameterError:  # no disc yet: no evidence until there is
            return
        self._fractions[index] = calibrated_dark_field(frames, positions, self.calibration)
        if len(self._kept) >= SETTLE_PATTERNS:
            self._settled, self._kept = True, []

    @property
    def fractions(self) -> np.ndarray:
        """Every metered pattern's calibrated dark-field fraction (P,), NaN where there is no evidence."""
        return self._fractions.copy()
