"""One scan session's state: what was acquired, what was asked for, the replies, the
strategy, its reconstruction geometry and its cached reconstruction.

The data plane hands a session at most one batch at a time (``zmq_server`` answers
``busy`` otherwise), so a session never races itself; its lock only guards against the
HTTP routes reading while a step writes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from ..contracts import ObjectGrid, SamplingGeometry
from ..errors import ScanServerError
from ..physics.calibration import DetectorCalibration, nominal_radius_px
from ..physics.detector_correction import APERTURE_PATTERNS, DetectorCorrection, detector_correction
from ..physics.detector_signals import DarkFieldMeter
from ..physics.incremental import IncrementalReconstruction, WarmStartSettings
from ..policy.model import AdaptiveModel
from ..policy.model_folder import ModelCard
from ..scanning.field_of_view import FieldOfView
from ..scanning.state import ScanStrategy
from .errors import ErrorCode, ServiceError
from .schemas import (AcquisitionSpec, DetectorGeometry, LiveStep, LiveView, PositionsReply, SessionStatus, Status,
                      Timings)
from .store import SessionFolder, SessionRecord, optics_of

log = logging.getLogger("scan_server.service")


def credential_hash(credential: str) -> str:
    """How a session credential is kept: its SHA-256 (hex)."""
    return hashlib.sha256(credential.encode()).hexdigest()


#: Reported positions may land this fraction of the field of view outside it (scan coils).
POSITION_TOLERANCE = 0.1


@dataclass(frozen=True)
class LoadedModel:
    """The model the server serves (or why there is none)."""

    model: AdaptiveModel | None
    name: str | None
    card: ModelCard | None
    error: str | None


@dataclass(frozen=True)
class Decision:
    """The next positions (n, 2) Å and what the decision took (ms)."""

    positions_angstrom: np.ndarray
    reconstruct_ms: float
    decide_ms: float


@dataclass(frozen=True)
class Geometry:
    """A session's reconstruction geometry: detector sampling, object grid (the field of view
    and a margin for landings outside it), the field of view and its pixels, and the radius
    (px) of the bright-field disc the spec's optics imply (the meter measures the real one)."""

    sampling: SamplingGeometry
    grid: ObjectGrid
    field: FieldOfView
    region: tuple[slice, slice]
    nominal_disc_radius_px: float

    @classmethod
    def of(cls, spec: AcquisitionSpec, max_object_px: int) -> Geometry:
        try:
            sampling = SamplingGeometry(spec.detector_px, spec.detector_sampling_inv_angstrom)
            field = FieldOfView.from_origin(spec.field_of_view_angstrom)
            margin = POSITION_TOLERANCE * np.asarray(field.extent_angstrom)
            grid = ObjectGrid.covering(field.corners_angstrom + np.stack([-margin, margin]), sampling)
        except ScanServerError as exc:
            raise ServiceError(ErrorCode.unsupported_spec, str(exc)) from exc
        if max(grid.shape_px) > max_object_px:
            raise ServiceError(ErrorCode.unsupported_spec, f"the reconstruction grid would be {list(grid.shape_px)} px "
                               f"(field of view / pixel {sampling.pixel_size_angstrom:.3f} Å); the server's limit is "
                               f"{max_object_px} px a side (max_object_px)")
        radius = nominal_radius_px(spec.semiangle_mrad, spec.energy_ev, spec.detector_sampling_inv_angstrom)
        return cls(sampling, grid, field, field.region(grid), radius)


class Session:
    """One scan: what was acquired, what was asked for, the replies, the strategy's state."""

    def __init__(self, record: SessionRecord, folder: SessionFolder, strategy: ScanStrategy | None,
                 geometry: Geometry, halton_seed: int) -> None:
        self.record = record
        self.spec = record.spec
        self.folder = folder
        self.strategy = strategy
        self.geometry = geometry
        self.halton_seed = halton_seed
        self.frames: list[np.ndarray] = []
        self.positions: list[np.ndarray] = []
        self.meter = DarkFieldMeter(geometry.nominal_disc_radius_px)
        self._metered_batches = 0
        self.counts_total = 0.0
        self.planned = record.first_positions_angstrom
        self.replies: dict[int, PositionsReply] = {}
        self.digests: dict[int, str] = {}       # seq → SHA-256 of the batch as received (decode.batch_digest)
        self.status = Status.open
        self.fallbacks = 0
        self.last_timings: Timings | None = None
        self.updated_at = record.created_at
        self.pending: Future | None = None
        self.lock = threading.RLock()
        self.step_lock = threading.RLock()   # a step (status check → reply stored) and finishing exclude each other
        self.version = 0
        self._changed = threading.Condition(self.lock)
        self._reconstruction: tuple[int, np.ndarray] | None = None
        self._warm: IncrementalReconstruction | None = None
        self._warm_batches = 0
        self._corrected_for: DetectorCalibration | None = None
        self._correction: DetectorCorrection | None = None
        # (calibration, batches metered when it was made): the meter's first and its settled one
        self._first_calibration: tuple[DetectorCalibration, int] | None = None
        self._settled_calibration: tuple[DetectorCalibration, int] | None = None
        self.resume_estimate: tuple[int, np.ndarray] | None = None   # (step, estimate) saved before a restart

    def add_batch(self, frames: np.ndarray, positions_angstrom: np.ndarray) -> None:
        """Keep a stored batch: frames (n, M, M) and positions (n, 2) Å. Call with the lock. The
        dark field is metered only when asked for (``dark_field``): a strategy that does not
        read it never pays for it on its step."""
        self.frames.append(frames)
        self.positions.append(positions_angstrom)
        self.counts_total += float(np.sum(frames, dtype=np.float64))

    def dark_field(self) -> np.ndarray:
        """The calibrated dark-field fraction (P,) of every stored pattern (NaN: no evidence),
        metering the batches stored since the last call. Call with the lock."""
        for frames, positions in zip(self.frames[self._metered_batches:], self.positions[self._metered_batches:]):
            self.meter.add(frames, positions)
            self._metered_batches += 1
            if self._first_calibration is None and self.meter.calibration is not None:
                self._first_calibration = (self.meter.calibration, self._metered_batches)
            if self._settled_calibration is None and self.meter.settled:
                self._settled_calibration = (self.meter.calibration, self._metered_batches)
        return self.meter.fractions

    def cached_reconstruction(self) -> np.ndarray | None:
        """The reconstruction of everything acquired so far, if one was made since."""
        cached = self._reconstruction
        return cached[1] if cached is not None and cached[0] == self.acquired else None

    def warm_reconstruction(self, device: torch.device, settings: WarmStartSettings) -> IncrementalReconstruction:
        """The session's warm-started reconstruction with every stored batch added; made on first
        use, continuing from ``resume_estimate`` when the session was resumed."""
        with self.lock:
            if self._warm is None:
                g = self.geometry
                self._warm = IncrementalReconstruction(optics_of(self.spec), g.grid, g.sampling, device, settings)
            for frames, positions in zip(self.frames[self._warm_batches:], self.positions[self._warm_batches:]):
                self._warm.add(frames, positions)
            self._warm_batches = len(self.frames)
            correction = self.detector_correction()
            if correction is not self._warm.correction:
                self._warm.set_correction(correction)
            if self.resume_estimate is not None:
                step, estimate = self.resume_estimate
                self._warm.restore(estimate, sum(len(p) for p in self.positions[:step + 1]))
                self.resume_estimate = None
            return self._warm

    def detector_correction(self) -> DetectorCorrection | None:
        """The detector's corrections this session's reconstructions are made with
        (``physics.detector_correction``): made by the meter's first calibration, then by its
        settled one (at most twice a session, each a match of the aperture on
        ``APERTURE_PATTERNS`` of the patterns stored when that calibration was made, so a resumed
        session corrects exactly as it did before the restart). ``None`` before a calibration,
        or where the corrections refuse it (a disc far off the metadata's: logged). A closed session
        that no longer holds its frames (restored after a restart) meters them from its recording,
        batch by batch as they came. Call with the lock."""
        if not self.frames and self.acquired and self._metered_batches < len(self.positions):
            recorded = self.folder.load_frames()
            self.frames = np.split(recorded, np.cumsum([len(p) for p in self.positions])[:-1])
            try:
                return self.detector_correction()
            finally:
                self.frames = []
        self.dark_field()
        target = self._settled_calibration or self._first_calibration
        if target is None or target[0] is self._corrected_for:
            return self._correction
        calibration, batches = target
        frames, positions = self._spread_frames(APERTURE_PATTERNS, batches)
        try:
            self._correction = detector_correction(calibration, optics_of(self.spec), self.geometry.sampling,
                                                   frames, positions)
        except (ScanServerError, ValueError) as error:   # a disc the corrections refuse, an aperture too small
            log.warning("session %s: reconstruction not corrected for the detector: %s", self.id, error)
            self._correction = None
        self._corrected_for = calibration
        return self._correction

    def _spread_frames(self, count: int, batches: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``count`` frames (n, M, M) and positions (n, 2) Å spread over the first ``batches``
        stored batches."""
        sizes = np.cumsum([len(p) for p in self.positions[:batches]])
        chosen = np.unique(np.linspace(0, sizes[-1] - 1, min(count, int(sizes[-1]))).round().astype(int))
        batch = np.searchsorted(sizes, chosen, side="right")
        within = chosen - np.concatenate([[0], sizes[:-1]])[batch]
        return (np.stack([self.frames[b][i] for b, i in zip(batch, within)]),
                np.stack([self.positions[b][i] for b, i in zip(batch, within)]))

    def keep_reconstruction(self, acquired: int, potential: np.ndarray) -> None:
        """Remember the reconstruction (H, W) of the first ``acquired`` positions."""
        self._reconstruction = (acquired, potential)

    @property
    def id(self) -> str:
        return self.record.session_id

    @property
    def acquired(self) -> int:
        return sum(len(p) for p in self.positions)

    @property
    def remaining(self) -> int:
        """Positions of the budget not acquired yet (0 when the scan is done)."""
        return max(self.spec.total_positions - self.acquired, 0)

    @property
    def next_seq(self) -> int:
        return len(self.positions)

    def unit(self, positions_angstrom: np.ndarray) -> np.ndarray:
        return self.geometry.field.to_unit(positions_angstrom)

    def angstrom(self, positions_unit: np.ndarray) -> np.ndarray:
        return self.geometry.field.to_angstrom(positions_unit)

    def check_credential(self, given: str | None) -> None:
        """Refuse (unauthorized) anyone but the session's opener: ``given`` must be its credential."""
        expected = self.record.token_sha256
        if expected is None:          # a session of a release before credentials
            return
        if not hmac.compare_digest(credential_hash(given or ""), expected):
            raise ServiceError(ErrorCode.unauthorized, f"missing or wrong session token for session {self.id} "
                               "(the session_token of its open reply)")

    def touch(self) -> None:
        """Mark a change the live views should see (a batch answered, the session closed). Call with the lock."""
        self.version += 1
        self._changed.notify_all()

    def wait_for_change(self, seen: int, timeout_s: float) -> int:
        """Block until ``version`` differs from ``seen`` or ``timeout_s`` passes; the version then."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout=timeout_s)
            return self.version

    def live_model(self) -> LiveView:
        """What the live view draws now."""
        with self.lock:
            acquired = np.concatenate(self.positions) if self.positions else np.empty((0, 2))
            steps = [LiveStep(seq=seq, positions=len(p), total_ms=r.timings.total_ms if r else None,
                              fallback=bool(r and r.fallback))
                     for seq, p in enumerate(self.positions) for r in [self.replies.get(seq)]]
            dose, source = self._dose()
            return LiveView(
                session_id=self.id, status=self.status, strategy=self.spec.strategy, version=self.version,
                field_of_view_angstrom=self.spec.field_of_view_angstrom, positions_acquired=len(acquired),
                positions_planned=self.spec.total_positions, acquired_angstrom=acquired.tolist(),
                acquired_step=[seq for seq, p in enumerate(self.positions) for _ in range(len(p))],
                next_positions_angstrom=np.asarray(self.planned).reshape(-1, 2).tolist()
                if self.status is Status.open else [],
                steps=steps, fallbacks=self.fallbacks, dose_electrons_per_angstrom2=dose, dose_source=source)

    def _dose(self) -> tuple[float | None, str | None]:
        """Electrons per Å² of the field of view so far, and where the electrons per pattern came from."""
        if not self.positions:
            return 0.0, None
        area = float(np.prod(self.spec.field_of_view_angstrom))
        if self.spec.electrons_per_pattern is not None:
            return self.spec.electrons_per_pattern * self.acquired / area, "spec"
        return self.counts_total / area, "detected counts"

    def close(self, status: Status) -> bool:
        """The one transition: an open session becomes ``status`` (finished or expired), its
        recording completed; False (and nothing done) when it was not open. Call with the lock."""
        if self.status is not Status.open or status is Status.open:
            return False
        self.folder.finish(self.counts_total)
        self.dark_field()          # the detector's calibration outlives the frames (the status reports it)
        try:
            self.detector_correction()  # and so do the corrections its reconstruction is made with
        except Exception:  # noqa: BLE001 - closing must not fail on a correction: the reconstruction goes without
            log.exception("session %s: detector corrections not made at close", self.id)
        self.status = status
        self._warm = None          # the device memory of a finished session's reconstruction
        self.frames = []           # and its frames: the complete recording holds them (``recorded_frames``)
        self.touch()
        return True

    def recorded_frames(self) -> list[np.ndarray]:
        """The frames acquired so far: held while the session is open, read from its recording after."""
        with self.lock:
            if self.frames or self.acquired == 0:
                return list(self.frames)
        return [self.folder.load_frames()]

    def status_model(self) -> SessionStatus:
        with self.lock:
            return SessionStatus(
                session_id=self.id, status=self.status, strategy=self.spec.strategy, spec=self.spec,
                step=len(self.positions), positions_acquired=self.acquired,
                positions_planned=self.spec.total_positions, next_seq=self.next_seq, fallbacks=self.fallbacks,
                last_timings=self.last_timings, model=self.record.model,
                recording=str(self.folder.recording_path), created_at=self.record.created_at,
                updated_at=self.updated_at, detector=self._detector_geometry())

    def _detector_geometry(self) -> DetectorGeometry | None:
        """The meter's calibration as the status reports it. Call with the lock."""
        if self.status is Status.open:
            self.dark_field()
        calibration = self.meter.calibration
        if calibration is None:
            return None
        positions = np.concatenate(self.positions) if self.positions else np.zeros((0, 2))
        correction = self._correction
        return DetectorGeometry(patterns=calibration.patterns, radius_px=calibration.radius_px,
                                nominal_radius_px=calibration.nominal_radius_px,
                                radius_disagrees=calibration.radius_disagrees,
                                edge_sigma_px=calibration.edge_sigma_px, centre_px=list(calibration.centre_px),
                                descan_range_px=calibration.descan_range_px(positions),
                                hot_pixels=calibration.hot_pixels, dead_pixels=calibration.dead_pixels,
                                background_per_px=calibration.background_per_px,
                                reconstruction_semiangle_mrad=correction.semiangle_mrad if correction else None,
                                point_spread_px=correction.psf_px if correction else None)
