"""``scan-server serve``: uvicorn with the app of ``create_app`` (both planes in one process)."""

from __future__ import annotations

import logging
import socket

import uvicorn

from ..errors import ParameterError
from . import kill_points
from .app import create_app
from .settings import ServiceSettings


def check_port_free(host: str, port: int, option: str) -> None:
    """A clear error, before anything starts, when ``host:port`` cannot be bound (in use, or
    not an address of this machine); port 0 means any free port."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and ZeroMQ bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ParameterError(f"cannot listen on {host}:{port} ({exc.strerror}): another server is using it? "
                                 f"choose another with {option}") from None


def serve(settings: ServiceSettings) -> None:
    settings.check_exposure()
    check_port_free(settings.host, settings.port, "--port")
    check_port_free(settings.host, settings.zmq_port, "--zmq-port")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    armed = kill_points.arm_from_environment()
    if armed is not None:
        logging.getLogger("scan_server.service").warning("kill point %s is armed (%s): this process will be "
                                                         "killed there", armed, kill_points.KILL_AT_ENV)
    app = create_app(settings)
    print(f"scan-server: HTTP on http://{settings.host}:{settings.port} (OpenAPI at /docs), "
          f"ZeroMQ on port {settings.zmq_port or 'any'}; data in {settings.data_dir}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
