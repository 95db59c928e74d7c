from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ... import __version__
from ...scanning.registry import SERVED_STRATEGIES, STRATEGIES
from ..schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="liveness and readiness (no token needed); 503 when the "
                                                      "data plane is not running", responses={503: {"model": Health}})
def health(request: Request, response: Response) -> Health:
    state = request.app.state
    alive = state.data_plane.alive
    if not alive:
        response.status_code = 503
    loaded = state.loaded
    learned = loaded.model.strategies if loaded.model is not None else ()
    strategies = [s for s in SERVED_STRATEGIES if not STRATEGIES[s].needs_model or s in learned]
    return Health(status="ok" if alive else "degraded", data_plane_alive=alive, version=__version__,
                  model_loaded=loaded.model is not None, model=loaded.name, model_error=loaded.error,
                  strategies=strategies, device=str(state.device),
                  data_endpoint=state.data_plane.endpoint, open_sessions=state.manager.open_count)
