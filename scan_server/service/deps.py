"""Dependencies of the routes: the bearer token check and the app's session manager."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ErrorCode, ServiceError
from .sessions import SessionManager

_bearer = HTTPBearer(auto_error=False)


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    expected = request.app.state.settings.token_value()
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ServiceError(ErrorCode.unauthorized, "missing or wrong bearer token (Authorization: Bearer TOKEN)")


def get_manager(request: Request) -> SessionManager:
    return request.app.state.manager


Authorised = Depends(require_token)
Manager = Annotated[SessionManager, Depends(get_manager)]
