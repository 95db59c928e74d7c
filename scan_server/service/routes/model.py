from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..deps import Authorised
from ..errors import ErrorCode, ServiceError

router = APIRouter(tags=["model"], dependencies=[Authorised])


@router.get("/model", summary="the loaded model's card (name, weights sha256, preset, training data, evaluation)")
def model_card(request: Request) -> dict[str, Any]:
    loaded = request.app.state.loaded
    if loaded.card is None:
        raise ServiceError(ErrorCode.model_unavailable, loaded.error or "no model loaded")
    return dict(loaded.card.document)
