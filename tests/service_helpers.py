"""Helpers of the service tests: a server subprocess and a raw protocol client."""


from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import zmq

from scan_server.contracts import Acquisition

TOKEN = "test-token-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spec_for(acquisition: Acquisition, strategy: str = "adaptive", total: int = 40, subsequence: int = 10,
             **extra: object) -> dict:
    return {"energy_ev": acquisition.optics.energy_ev, "semiangle_mrad": acquisition.optics.semiangle_mrad,
            "c10_angstrom": acquisition.optics.c10_angstrom,
            "field_of_view_angstrom": np.ptp(acquisition.positions_angstrom, axis=0).tolist(),
            "detector_px": acquisition.detector_px,
            "detector_sampling_inv_angstrom": acquisition.detector_sampling_inv_angstrom,
            "total_positions": total, "subsequence": subsequence, "strategy": strategy, **extra}


@dataclass
class Server:
    """``scan-server serve`` in a subprocess."""

    data_dir: Path
    models_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    zmq_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    def start(self) -> Server:
        env = {**os.environ, "SCAN_SERVER_TOKEN": TOKEN, "SCAN_SERVER_MODELS_DIR": str(self.models_dir),
               "SCAN_SERVER_MODEL": "tiny", "SCAN_SERVER_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
               "SCAN_SERVER_DECISION_DEADLINE_MS": "0", **self.env}
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scan_server.cli", "serve", "--port", str(self.port), "--zmq-port",
             str(self.zmq_port), "--data-dir", str(self.data_dir)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: "
                                   f"{Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not come up in 90 s")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=30)
        self.process = None
        self.log.close()

    def http(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


class Wire:
    """A DEALER socket speaking the batch protocol."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send_raw(self, parts: list[bytes], timeout_s: float = 30) -> dict:
        self.socket.send_multipart(parts)
        if not self.socket.poll(int(timeout_s * 1000)):
            raise TimeoutError("no reply")
        return json.loads(self.socket.recv_multipart()[-1])   # after an echoed empty delimiter, if any

    def batch(self, session_id: str, seq: int, frames: np.ndarray, positions: np.ndarray, token: str | None = TOKEN,
              **overrides: object) -> dict:
        header = {"type": "batch", "session_id": session_id, "seq": seq, "token": token,
                  "positions_angstrom": np.asarray(positions).tolist(), "dtype": str(frames.dtype),
                  "shape": list(frames.shape), "encoding": "raw", **overrides}
        return self.send_raw([json.dumps(header).encode(), np.ascontiguousarray(frames).tobytes()])

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def acquire(acquisition: Acquisition, used: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest unused recorded patterns to ``positions`` (a tiny virtual microscope):
    (frames uint16, actual positions Å)."""
    from scan_server.microscope import VirtualMicroscope

    microscope = VirtualMicroscope(acquisition.positions_angstrom, acquisition.frames)
    microscope.used[:] = used
    exposure = microscope.acquire(np.asarray(positions).reshape(-1, 2))
    used[exposure.indices] = True
    return exposure.frames.astype(np.uint16), exposure.positions_angstrom


def open_session(server: Server, acquisition: Acquisition, **spec: object) -> dict:
    with server.http() as client:
        response = client.post("/sessions", json=spec_for(acquisition, **spec))
    assert response.status_code == 201, response.text
    return response.json()


def run_session(server: Server, wire: Wire, acquisition: Acquisition, **spec: object) -> tuple[dict, list[dict], list]:
    """Open, then send batches until done: (opened, replies, frames sent per step)."""
    opened = open_session(server, acquisition, **spec)
    used = np.zeros(acquisition.count, dtype=bool)
    positions, replies, sent = opened["positions_angstrom"], [], []
    for seq in range(10000):
        frames, actual = acquire(acquisition, used, np.asarray(positions))
        reply = wire.batch(opened["session_id"], seq, frames, actual)
        assert reply["type"] == "positions", reply
        replies.append(reply)
        sent.append((frames, actual))
        if reply["done"]:
            break
        positions = reply["positions_angstrom"]
    return opened, replies, sent
