"""Helpers of the service tests: a server subprocess and a raw protocol client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import zmq
from scan_server.emulation.local_server import LocalServer
from scan_server.emulation.recorded import spec_for as replay_spec

from scan_server.contracts import Acquisition

TOKEN = "test-token-1234567"

#: session id → its credential (session_token), as the client that opened it keeps it
CREDENTIALS: dict[str, str] = {}


def _as_owner(request: httpx.Request) -> None:
    """Send a session's credential on its routes, as its opener does (unless the test set one)."""
    parts = request.url.path.split("/")
    if len(parts) > 2 and parts[1] == "sessions" and parts[2] in CREDENTIALS \
            and "X-Session-Token" not in request.headers:
        request.headers["X-Session-Token"] = CREDENTIALS[parts[2]]


def _remember(response: httpx.Response) -> None:
    """Keep the credential of each session opened through this client."""
    if response.request.method == "POST" and response.request.url.path == "/sessions" and response.status_code == 201:
        opened = json.loads(response.read())
        CREDENTIALS[opened["session_id"]] = opened["session_token"]


#: event hooks of a test HTTP client that acts as the opener of every session it opens
OWNER_HOOKS = {"request": [_as_owner], "response": [_remember]}


def spec_for(acquisition: Acquisition, strategy: str = "adaptive", total: int = 40, subsequence: int = 10,
             **extra: object) -> dict:
    """The replay client's spec of a recording, with test overrides."""
    return {**replay_spec(acquisition, strategy, total, subsequence, seed=0), **extra}


class Server(LocalServer):
    """``scan-server serve`` in a subprocess with the tiny model, the test token, one torch
    thread and no decision deadline (so replies are deterministic)."""

    def __init__(self, data_dir: Path, models_dir: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, data_dir.parent / "server.log", token=TOKEN, env={"OMP_NUM_THREADS": "1"},
                         models_dir=str(models_dir), model="tiny", device="cpu", decision_deadline_ms="0",
                         **{k.removeprefix("SCAN_SERVER_").lower(): v for k, v in (env or {}).items()})

    def http(self, token: str | None = TOKEN, owner: bool = True) -> httpx.Client:
        """An HTTP client with the server token; ``owner``: it also sends each session's credential."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, event_hooks=OWNER_HOOKS if owner else {})


class ServerDied(Exception):
    """The server process exited while a message waited for its reply."""


class Wire:
    """A DEALER socket speaking the batch protocol."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send_raw(self, parts: list[bytes], timeout_s: float = 30, alive: Callable[[], bool] | None = None) -> dict:
        """Send one message, wait for its reply; ``alive``: checked every 0.1 s, ``ServerDied`` when false."""
        self.socket.send_multipart(parts)
        deadline = time.monotonic() + timeout_s
        while not self.socket.poll(100):
            if alive is not None and not alive():
                raise ServerDied("the server died before it replied")
            if time.monotonic() > deadline:
                raise TimeoutError("no reply")
        return json.loads(self.socket.recv_multipart()[-1])   # after an echoed empty delimiter, if any

    def batch(self, session_id: str, seq: int, frames: np.ndarray, positions: np.ndarray, token: str | None = TOKEN,
              alive: Callable[[], bool] | None = None, **overrides: object) -> dict:
        header = {"type": "batch", "session_id": session_id, "seq": seq, "token": token,
                  "session_token": CREDENTIALS.get(session_id),
                  "positions_angstrom": np.asarray(positions).tolist(), "dtype": str(frames.dtype),
                  "shape": list(frames.shape), "encoding": "raw", **overrides}
        return self.send_raw([json.dumps(header).encode(), np.ascontiguousarray(frames).tobytes()], alive=alive)

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def acquire(acquisition: Acquisition, used: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest unused recorded patterns to ``positions`` (a tiny virtual microscope):
    (frames uint16, actual positions Å)."""
    from scan_server.scanning.virtual_microscope import VirtualMicroscope

    microscope = VirtualMicroscope(acquisition.positions_angstrom, acquisition.frames)
    microscope.used[:] = used
    exposure = microscope.acquire(np.asarray(positions).reshape(-1, 2))
    used[exposure.indices] = True
    return exposure.frames.astype(np.uint16), exposure.positions_angstrom


def first_batch(acquisition: Acquisition, opened: dict) -> tuple[np.ndarray, np.ndarray]:
    """The patterns a fresh session's first positions select: (frames uint16, actual positions Å)."""
    return acquire(acquisition, np.zeros(acquisition.count, dtype=bool), np.asarray(opened["positions_angstrom"]))


def open_session(server: Server, acquisition: Acquisition, **spec: object) -> dict:
    with server.http() as client:
        response = client.post("/sessions", json=spec_for(acquisition, **spec))
    assert response.status_code == 201, response.text
    opened = response.json()
    CREDENTIALS[opened["session_id"]] = opened["session_token"]
    return opened


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
