"""The live view: plain HTML pages and one small script, served by the scan server itself (no
build step, no CDN: they work on a microscope network without internet).

The pages hold no data and need no token; their script reads the server token and the
session's credential from the URL's fragment (``#token=…&session=…``, which the browser never
sends, so they never reach a log) or asks for them, keeps them in the tab's session storage,
and fetches everything with ``Authorization: Bearer`` and ``X-Session-Token``: the session
list (``GET /sessions``), the state (``GET /sessions/{id}/events``, server-sent events read
through ``fetch``, which, unlike ``EventSource``, sends headers) and the reconstruction
(``GET /sessions/{id}/reconstruction?format=png``). A session's page shows only to whoever
holds its credential (the client that opened it)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ..errors import ErrorCode, error_responses

router = APIRouter(tags=["live view"])

#: the files of the live view, in the package (scan_server/service/static)
STATIC = resources.files("scan_server.service") / "static"
NO_STORE = {"Cache-Control": "no-store"}


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers=NO_STORE)


@router.get("/view", response_class=HTMLResponse, summary="the live view's index: open and recent sessions")
def index_page() -> HTMLResponse:
    return _page("index.html")


@router.get("/sessions/{session_id}/view", response_class=HTMLResponse,
            summary="the live view of one session (the page; its data needs the token)",
            responses=error_responses(ErrorCode.bad_request))
def session_page(session_id: str) -> HTMLResponse:
    return _page("view.html")


@router.get("/static/view.js", summary="the live view's script")
def script() -> Response:
    return Response((STATIC / "view.js").read_text(encoding="utf-8"), media_type="text/javascript",
                    headers=NO_STORE)
