from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..deps import Authorised
from ..errors import TOKEN_ROUTE

router = APIRouter(tags=["metrics"], dependencies=[Authorised], responses=TOKEN_ROUTE)


@router.get("/metrics", summary="Prometheus metrics: per-stage step latency, sessions, errors")
def metrics(request: Request) -> Response:
    state = request.app.state
    state.metrics.open_sessions.set(state.manager.open_count)
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
