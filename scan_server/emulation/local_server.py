"""Start ``scan-server serve`` in the background on free loopback ports (demo, benchmarks)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
from scan_client.errors import ServerUnavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """A server subprocess on fixed free ports (a restart keeps them); ``url``, ``endpoint``
    and ``token``. Use as a context manager (stopped on exit). ``settings``: SCAN_SERVER_*
    values by name; ``env``: further environment (e.g. OMP_NUM_THREADS); ``token``: a random
    one unless given."""

    def __init__(self, data_dir: Path, log_file: Path, token: str | None = None, env: dict[str, str] | None = None,
                 **settings: str) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self.settings = settings
        self.env = env or {}
        self.token = token or secrets.token_hex(16)
        self.port = free_port()
        self.zmq_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    def start(self, timeout_s: float = 120) -> LocalServer:
        env = {**os.environ, **self.env, "SCAN_SERVER_TOKEN": self.token,
               **{f"SCAN_SERVER_{k.upper()}": str(v) for k, v in self.settings.items()}}
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scan_server.cli", "serve", "--port", str(self.port), "--zmq-port",
                 str(self.zmq_port), "--data-dir", str(self.data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(f"the server exited ({self.process.returncode}); see {self.log_file}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise ServerUnavailable(f"the server did not answer /health within {timeout_s} s; see {self.log_file}")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown), or SIGKILL to simulate a crash."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
