from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Literal

import matplotlib
import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from ..deps import Authorised, Manager, Owned
from ..errors import SESSION_ROUTE, TOKEN_ROUTE, ErrorCode, ServiceError, error_responses
from ..schemas import AcquisitionSpec, LiveView, SessionOpened, SessionStatus, Status

#: a live view's stream sends a comment line when nothing changed for this long (keeps proxies open)
KEEP_ALIVE_S = 10.0

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[Authorised], responses=TOKEN_ROUTE)


@router.post("", response_model=SessionOpened, status_code=201,
             summary="open a scan session; answers the first sub-sequence and the data endpoint",
             responses=error_responses(ErrorCode.bad_request, ErrorCode.unsupported_spec, ErrorCode.model_unavailable,
                                       ErrorCode.too_many_sessions, ErrorCode.storage_failed))
def open_session(spec: AcquisitionSpec, manager: Manager, request: Request) -> SessionOpened:
    session, warnings, credential = manager.open(spec)
    return SessionOpened(session_id=session.id, session_token=credential, strategy=spec.strategy,
                         positions_angstrom=session.planned.tolist(), seq=0,
                         data_endpoint=request.app.state.data_plane.endpoint, model=session.record.model,
                         warnings=warnings)


@router.get("", response_model=list[SessionStatus], summary="the sessions this server holds, newest first "
                                                           "(open, resumed, finished since it started; at most 100)")
def list_sessions(manager: Manager) -> list[SessionStatus]:
    return [session.status_model() for session in manager.listed()]


@router.get("/{session_id}/live", response_model=LiveView, summary="what the live view draws: positions by "
                                                                   "step, next positions, step times, dose",
            responses=SESSION_ROUTE)
def live(session: Owned) -> LiveView:
    return session.live_model()


@router.get("/{session_id}/events", summary="server-sent events: the live view's state after every change",
            responses={200: {"content": {"text/event-stream": {}}}, **SESSION_ROUTE, **error_responses(ErrorCode.busy)})
async def events(session: Owned, request: Request) -> StreamingResponse:
    viewers = request.app.state.viewers
    if not viewers.acquire(blocking=False):
        raise ServiceError(ErrorCode.busy, f"{request.app.state.settings.max_viewers} live views are open "
                                           "(max_viewers); close one")

    async def stream() -> AsyncIterator[str]:
        try:
            seen = -1
            while not await request.is_disconnected():
                version = session.version if seen < 0 else \
                    await asyncio.to_thread(session.wait_for_change, seen, KEEP_ALIVE_S)
                if version == seen:
                    yield ": keep-alive\n\n"
                    continue
                seen = version
                view = session.live_model()
                yield f"event: state\ndata: {view.model_dump_json()}\n\n"
                if view.status is not Status.open:
                    break
        finally:
            viewers.release()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/{session_id}", response_model=SessionStatus, summary="step, positions acquired/planned, timings",
            responses=SESSION_ROUTE)
def session_status(session: Owned) -> SessionStatus:
    return session.status_model()


@router.get("/{session_id}/reconstruction", summary="the current reconstruction: .npy (complex64, whole grid) or "
                                                     "PNG (phase over the scanned field, ≥ 512 px)",
            responses={200: {"content": {"application/octet-stream": {}, "image/png": {}}}, **SESSION_ROUTE,
                       **error_responses(ErrorCode.bad_request)})
def reconstruction(session: Owned, manager: Manager, format: Literal["npy", "png"] = "npy") -> Response:
    potential = manager.reconstruction(session.id)
    buffer = io.BytesIO()
    if format == "npy":
        np.save(buffer, potential.astype(np.complex64), allow_pickle=False)
        return Response(buffer.getvalue(), media_type="application/octet-stream")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(buffer, _scanned_phase(potential, session.geometry.region), cmap="gray", format="png")
    return Response(buffer.getvalue(), media_type="image/png")


#: the PNG's longer side is at least this many pixels
PNG_MIN_SIDE_PX = 512


def _scanned_phase(potential: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """The phase over the scanned field of view only, enlarged by an integer factor (nearest
    pixel, so every reconstruction pixel stays visible) to at least ``PNG_MIN_SIDE_PX``."""
    phase = potential.real[region]
    factor = max(1, -(-PNG_MIN_SIDE_PX // max(phase.shape)))
    return np.kron(phase, np.ones((factor, factor)))


@router.delete("/{session_id}", response_model=SessionStatus, summary="finish: flush and close the recording",
               responses=SESSION_ROUTE)
def finish_session(session: Owned, manager: Manager) -> SessionStatus:
    return manager.finish(session.id).status_model()
