"""``scan-server serve``: uvicorn with the app of ``create_app`` (both planes in one process)."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .settings import ServiceSettings


def serve(settings: ServiceSettings) -> None:
    settings.check_exposure()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    print(f"scan-server: HTTP on http://{settings.host}:{settings.port} (OpenAPI at /docs), "
          f"ZeroMQ on port {settings.zmq_port or 'any'}; data in {settings.data_dir}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
