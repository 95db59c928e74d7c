from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..deps import Authorised
from ..errors import TOKEN_ROUTE, ErrorCode, ServiceError, error_responses

router = APIRouter(tags=["model"], dependencies=[Authorised], responses=TOKEN_ROUTE)


@router.get("/model", summary="the loaded model's card (name, weights sha256, preset, training data, evaluation)",
            responses=error_responses(ErrorCode.model_unavailable))
def model_card(request: Request) -> dict[str, Any]:
    loaded = request.app.state.loaded
    if loaded.card is None:
        raise ServiceError(ErrorCode.model_unavailable, loaded.error or "no model loaded")
    return dict(loaded.card.document)
