"""Message schemas of both planes (pydantic). HTTP bodies appear in the OpenAPI schema at
/openapi.json; ZeroMQ headers are documented in docs/protocol.md. One schema per direction."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scan_client.protocol import ENCODINGS, FRAME_DTYPES, PROTOCOL_VERSION

from ..scanning.registry import SERVED_STRATEGIES, VALUE_MAP

#: the strategies a session may ask for: the registry's served ones
Strategy = Literal[SERVED_STRATEGIES]  # type: ignore[valid-type]
Position = Annotated[list[float], Field(min_length=2, max_length=2)]


class Status(str, Enum):
    """A session's life: open → finished (its budget spent, or DELETE) or expired (idle too
    long). Only an open session changes; a closed one stays as it is."""

    open = "open"
    finished = "finished"
    expired = "expired"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcquisitionSpec(_Strict):
    """What the microscope will do: optics, field of view, detector, budget and strategy.
    Positions are (y, x) in Å from the field of view's first corner; the field of view
    runs from (0, 0) to ``field_of_view_angstrom``."""

    energy_ev: float = Field(gt=0, le=1e7, description="beam energy (eV)")
    semiangle_mrad: float = Field(gt=0, le=500, description="convergence semi-angle (mrad)")
    c10_angstrom: float = Field(0.0, ge=-1e5, le=1e5, description="C10 = −defocus (Å)")
    c30_angstrom: float = Field(0.0, ge=-1e9, le=1e9, description="spherical aberration Cs (Å)")
    field_of_view_angstrom: tuple[float, float] = Field(description="scan field of view (y, x) in Å")
    detector_px: int = Field(ge=4, le=1024, description="detector side in pixels (square, even)")
    detector_sampling_inv_angstrom: float = Field(gt=0, le=10, description="detector pixel in Å⁻¹")
    total_positions: int = Field(250, ge=1, description="the session's budget of probe positions")
    subsequence: int = Field(50, ge=1, le=10000, description="positions per reply")
    strategy: Strategy = VALUE_MAP
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the random/Halton sequences")
    electrons_per_pattern: float | None = Field(None, gt=0, description="beam current per pattern (metadata)")
    label: str = Field("", max_length=200, description="free text kept with the recording")

    @field_validator("field_of_view_angstrom")
    @classmethod
    def _positive_fov(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(v) and 0 < v <= 1e4 for v in value):
            raise ValueError("both sides of the field of view must be in (0, 10000] Å")
        return value

    @field_validator("detector_px")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("detector_px must be even")
        return value


class Timings(BaseModel):
    """Per-stage wall times of one step, in ms."""

    decode_ms: float = 0.0
    persist_ms: float = 0.0
    reconstruct_ms: float = 0.0
    decide_ms: float = 0.0
    total_ms: float = 0.0


class SessionOpened(BaseModel):
    session_id: str
    session_token: str = Field(description="this session's credential: required (besides the server token) in "
                                           "every batch header (session_token) and, as X-Session-Token, on the "
                                           "session's HTTP routes; shown once, kept by the server only as a hash")
    strategy: Strategy
    positions_angstrom: list[Position] = Field(description="the first sub-sequence, (y, x) Å")
    seq: int = Field(0, description="seq of the first batch to send")
    data_endpoint: str = Field(description="ZeroMQ address to send batches to")
    protocol_version: str = PROTOCOL_VERSION
    model: str | None = Field(description="model name (adaptive) or null")
    warnings: list[str] = Field(default_factory=list)


class DetectorGeometry(BaseModel):
    """The detector as measured from the session's own patterns (physics/calibration.py)."""

    patterns: int = Field(description="patterns the calibration was fitted on")
    radius_px: float = Field(description="the bright-field disc's measured radius, detector pixels")
    nominal_radius_px: float = Field(description="the radius the spec's semi-angle, energy and sampling imply")
    radius_disagrees: bool = Field(description="they differ by more than 2 % (a miscalibrated semi-angle or sampling)")
    edge_sigma_px: float = Field(description="the disc edge's width (Gaussian σ), pixels")
    centre_px: list[float] = Field(description="the disc centre (row, column) at the scan's centre, pixels")
    descan_range_px: float = Field(description="how far the disc centre moves across the acquired positions, pixels")
    hot_pixels: int
    dead_pixels: int
    background_per_px: float = Field(description="flat background, counts per pixel per frame")
    reconstruction_semiangle_mrad: float | None = Field(
        None, description="the semi-angle the reconstruction uses (the aperture that fits the patterns; "
                          "physics/detector_correction.py); null until the reconstruction has been corrected")
    point_spread_px: float | None = Field(
        None, description="the detector's point-spread σ (pixels) the reconstruction models; null as above")


class SessionStatus(BaseModel):
    session_id: str
    status: Status
    strategy: Strategy
    spec: AcquisitionSpec
    step: int = Field(description="batches accepted")
    positions_acquired: int
    positions_planned: int = Field(description="total_positions of the spec")
    next_seq: int
    fallbacks: int = Field(description="replies that carried Halton points because the decision was late")
    last_timings: Timings | None
    model: str | None
    recording: str = Field(description="path of the session's HDF5 recording on the server")
    created_at: float
    updated_at: float
    detector: DetectorGeometry | None = Field(None, description="the detector measured from the patterns so far "
                                                                "(none before the first batch with beam)")


class LiveStep(BaseModel):
    """One answered step of a session, as the live view shows it."""

    seq: int
    positions: int = Field(description="positions of the batch")
    total_ms: float | None = Field(description="batch received → reply ready (server side)")
    fallback: bool


class LiveView(BaseModel):
    """What a session's live view draws (``GET /sessions/{id}/live`` and each server-sent event
    of ``GET /sessions/{id}/events``)."""

    session_id: str
    status: Status
    strategy: Strategy
    version: int = Field(description="increases with every change (a batch answered, the session closed)")
    field_of_view_angstrom: tuple[float, float]
    positions_acquired: int
    positions_planned: int
    acquired_angstrom: list[tuple[float, float]] = Field(description="every acquired position (y, x) Å, in order")
    acquired_step: list[int] = Field(description="the step (batch) of each acquired position")
    next_positions_angstrom: list[tuple[float, float]] = Field(description="the positions asked for next")
    steps: list[LiveStep]
    fallbacks: int
    dose_electrons_per_angstrom2: float | None = Field(description="electrons per Å² of the field of view so far")
    dose_source: Literal["spec", "detected counts"] | None = Field(
        description="electrons per pattern from the spec's electrons_per_pattern, else the mean detected counts")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field("ok", description="degraded: the data plane is not running "
                                                                "(answered with HTTP 503)")
    data_plane_alive: bool = Field(True, description="the ZeroMQ loop went round within the last 5 s")
    version: str
    protocol_version: str = PROTOCOL_VERSION
    model_loaded: bool
    model: str | None
    model_error: str | None = Field(None, description="why no model is loaded, when none is")
    strategies: list[str] = Field(description="the strategies a session may use now: the loaded model's and the "
                                              "baselines, in the order reports show them")
    device: str
    data_endpoint: str | None
    open_sessions: int


class ErrorBody(BaseModel):
    code: str
    message: str


# ---- ZeroMQ data plane -------------------------------------------------------------

class BatchHeader(_Strict):
    """Part 0 of a batch message (JSON). The frame buffer follows: one part (``raw``, C order)
    or one part per frame (``bslz4``: Dectris bitshuffle-LZ4 with its 12-byte header)."""

    type: Literal["batch"]
    session_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, le=2**31)
    token: str | None = Field(None, max_length=4096)
    session_token: str | None = Field(None, max_length=256, description="the session's credential (open reply)")
    positions_angstrom: list[Position] = Field(max_length=100000)
    dtype: str = Field(max_length=16, description=f"one of {', '.join(FRAME_DTYPES)}")
    shape: tuple[int, int, int]
    encoding: Literal[ENCODINGS] = "raw"  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> BatchHeader:
        if min(self.shape) < 1:
            raise ValueError("shape must be positive")
        return self


class PositionsReply(BaseModel):
    type: Literal["positions"] = "positions"
    session_id: str
    seq: int = Field(description="seq of the batch this answers")
    positions_angstrom: list[Position] = Field(description="next positions (y, x) Å; empty when done")
    done: bool
    fallback: bool = Field(False, description="true: the decision was late; these are the next Halton points")
    timings: Timings


class ErrorReply(BaseModel):
    type: Literal["error"] = "error"
    seq: int | None = None
    code: str
    message: str


def protocol_json_schema() -> dict:
    """JSON Schemas of the ZeroMQ messages (committed as docs/protocol-v1.schema.json)."""
    return {"protocol_version": PROTOCOL_VERSION,
            "batch_header": BatchHeader.model_json_schema(),
            "positions_reply": PositionsReply.model_json_schema(),
            "error_reply": ErrorReply.model_json_schema(),
            "acquisition_spec": AcquisitionSpec.model_json_schema()}


if __name__ == "__main__":
    import json

    print(json.dumps(protocol_json_schema(), indent=2, ensure_ascii=False))
