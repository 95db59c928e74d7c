"""Dependencies of the routes: the bearer token check, the app's session manager and a
session's owner check (its credential in ``X-Session-Token``)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from scan_client.protocol import SESSION_TOKEN_HEADER

from .errors import ErrorCode, ServiceError
from .session import Session
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


_session_credential = APIKeyHeader(name=SESSION_TOKEN_HEADER, auto_error=False, scheme_name="session credential",
                                   description="the session's own credential: `session_token` of its open reply")


def owned_session(session_id: str, request: Request,
                  credential: Annotated[str | None, Depends(_session_credential)]) -> Session:
    """The session of the path, for its opener only: the ``X-Session-Token`` header must be its credential."""
    return get_manager(request).authorised(session_id, credential)


Authorised = Depends(require_token)
Manager = Annotated[SessionManager, Depends(get_manager)]
Owned = Annotated[Session, Depends(owned_session)]
