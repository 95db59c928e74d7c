from __future__ import annotations

import io
from typing import Literal

import matplotlib
import numpy as np
from fastapi import APIRouter, Request, Response

from ..deps import Authorised, Manager
from ..schemas import AcquisitionSpec, SessionOpened, SessionStatus

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[Authorised])


@router.post("", response_model=SessionOpened, status_code=201,
             summary="open a scan session; answers the first sub-sequence and the data endpoint")
def open_session(spec: AcquisitionSpec, manager: Manager, request: Request) -> SessionOpened:
    session, warnings = manager.open(spec)
    return SessionOpened(session_id=session.id, strategy=spec.strategy,
                         positions_angstrom=session.planned.tolist(), seq=0,
                         data_endpoint=request.app.state.data_plane.endpoint, model=session.record.model,
                         warnings=warnings)


@router.get("/{session_id}", response_model=SessionStatus, summary="step, positions acquired/planned, timings")
def session_status(session_id: str, manager: Manager) -> SessionStatus:
    return manager.get(session_id).status_model()


@router.get("/{session_id}/reconstruction", summary="the current reconstruction: .npy (complex64, whole grid) or "
                                                     "PNG (phase over the scanned field, ≥ 512 px)",
            responses={200: {"content": {"application/octet-stream": {}, "image/png": {}}}})
def reconstruction(session_id: str, manager: Manager, format: Literal["npy", "png"] = "npy") -> Response:
    potential = manager.reconstruction(session_id)
    buffer = io.BytesIO()
    if format == "npy":
        np.save(buffer, potential.astype(np.complex64), allow_pickle=False)
        return Response(buffer.getvalue(), media_type="application/octet-stream")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(buffer, _scanned_phase(potential, manager.get(session_id).geometry.region), cmap="gray", format="png")
    return Response(buffer.getvalue(), media_type="image/png")


#: the PNG's longer side is at least this many pixels
PNG_MIN_SIDE_PX = 512


def _scanned_phase(potential: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """The phase over the scanned field of view only, enlarged by an integer factor (nearest
    pixel, so every reconstruction pixel stays visible) to at least ``PNG_MIN_SIDE_PX``."""
    phase = potential.real[region]
    factor = max(1, -(-PNG_MIN_SIDE_PX // max(phase.shape)))
    return np.kron(phase, np.ones((factor, factor)))


@router.delete("/{session_id}", response_model=SessionStatus, summary="finish: flush and close the recording")
def finish_session(session_id: str, manager: Manager) -> SessionStatus:
    return manager.finish(session_id).status_model()
