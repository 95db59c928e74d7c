"""``create_app(settings)``: the FastAPI application with its ZeroMQ data plane.

Nothing is built at import: the lifespan loads the model, opens the session index
(resuming open sessions) and starts the ZeroMQ thread; shutdown stops them in reverse.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import __version__
from ..device import choose_device
from ..errors import ScanServerError
from ..policy.model_folder import ModelFolder
from .body_limit import BodyLimit
from .errors import EVERY_ROUTE, ErrorCode, ServiceError
from .prometheus_metrics import ServiceMetrics
from .routes import health, model, sessions, telemetry, view
from .schemas import PROTOCOL_VERSION
from .session import LoadedModel
from .sessions import SessionManager
from .settings import ServiceSettings
from .zmq_server import ZmqServer

log = logging.getLogger("scan_server.service")


def load_served_model(settings: ServiceSettings, device) -> LoadedModel:
    folder = settings.model_folder()
    if folder is None:
        return LoadedModel(None, None, None, "no model configured (SCAN_SERVER_MODEL is empty)")
    if not folder.is_dir():
        return LoadedModel(None, None, None, f"model folder {folder} not found")
    try:
        model, card = ModelFolder(folder).load(device)
    except (ScanServerError, OSError, ValueError, KeyError) as exc:
        return LoadedModel(None, None, None, f"model {folder} could not be loaded: {exc}")
    return LoadedModel(model.eval(), card.name or folder.name, card, None)


def _openapi_as_served(app: FastAPI) -> None:
    """Two corrections to FastAPI's OpenAPI document. A session's routes need the bearer token
    *and* the session credential: one security requirement with both (FastAPI lists them as
    alternatives). Errors are JSON on every route, the HTML pages' too (FastAPI gives an error
    response a route's own media type)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for operations in generate()["paths"].values():
                for operation in operations.values():
                    if len(operation.get("security", [])) > 1:
                        operation["security"] = [{k: v for need in operation["security"] for k, v in need.items()}]
                    for status, response in operation["responses"].items():
                        if int(status) >= 400 and "content" in response:
                            response["content"] = {"application/json": next(iter(response["content"].values()))}
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ServiceSettings) -> FastAPI:
    settings.check_exposure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        device = choose_device(settings.device)
        metrics = ServiceMetrics()
        loaded = load_served_model(settings, device)
        if loaded.error:
            log.warning("%s: adaptive sessions are refused, the baselines are served", loaded.error)
        manager = SessionManager(settings, loaded, device, metrics)
        manager.start()
        data_plane = ZmqServer(settings, manager, metrics)
        data_plane.start()
        app.state.settings, app.state.metrics, app.state.device = settings, metrics, device
        app.state.loaded, app.state.manager, app.state.data_plane = loaded, manager, data_plane
        app.state.viewers = threading.BoundedSemaphore(settings.max_viewers) if settings.max_viewers else \
            threading.Semaphore(0)
        log.info("data plane on %s, model %s, device %s", data_plane.endpoint, loaded.name, device)
        try:
            yield
        finally:
            data_plane.stop()
            manager.close()

    app = FastAPI(title="adaptive-scan-server", version=__version__, lifespan=lifespan, responses=EVERY_ROUTE,
                  redirect_slashes=False,  # a redirect has no error body; a path with a slash too many is not found
                  description=f"Control plane of the adaptive scan service (protocol {PROTOCOL_VERSION}); the "
                              "data plane is ZeroMQ, see docs/protocol.md.")

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        request.app.state.metrics.errors.labels(exc.code.value, "http").inc()
        return JSONResponse({"code": exc.code.value, "message": exc.message}, status_code=exc.http_status,
                            headers={"WWW-Authenticate": "Bearer"} if exc.code == ErrorCode.unauthorized else None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        request.app.state.metrics.errors.labels(ErrorCode.bad_request.value, "http").inc()
        return JSONResponse({"code": ErrorCode.bad_request.value, "message": f"{where}: {first.get('msg')}"},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed}.get(exc.status_code,
                                                                                 ErrorCode.bad_request)
        return JSONResponse({"code": code.value, "message": str(exc.detail)}, status_code=exc.status_code)

    for router in (health.router, model.router, sessions.router, telemetry.router, view.router):
        app.include_router(router)
    _openapi_as_served(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    return app
