"""``ScanClient``: HTTP for control, a ZeroMQ DEALER for batches, retries with the same seq."""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import zmq

from .errors import Busy, ScanClientError, ServerUnavailable, error_for
from .protocol import SESSION_TOKEN_HEADER, batch_header


class ScanClient:
    """A connection to one server. Use as a context manager.

    url: the HTTP base (``http://host:8000``); token: the server's bearer token (or None
    on an open loopback server); timeout_s: per request and per batch attempt; retries:
    further attempts of a batch after a timeout (same ``seq``: the server answers a
    repeat without a second state change)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30.0, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self.context = zmq.Context()

    # ---- HTTP --------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"{self.url}{path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                raise error_for(body["code"], body["message"])
            except (ValueError, KeyError):
                raise ScanClientError(f"HTTP {response.status_code}: {response.text[:200]}") from None
        return response.json() if response.headers.get("content-type", "").startswith("application/json") \
            else response.content

    def health(self) -> dict:
        return self._json("GET", "/health")

    def model(self) -> dict:
        return self._json("GET", "/model")

    def live_view_url(self, with_token: bool = True) -> str:
        """The browser page that lists the server's sessions (a session's own: ``Session.live_view_url``).
        The token rides in the URL's fragment (``#token=…``): browsers never send a fragment."""
        return f"{self.url}/view" + (f"#token={self.token}" if with_token and self.token else "")

    def open_session(self, spec: dict) -> Session:
        """Open a session (spec: the AcquisitionSpec fields of docs/protocol.md)."""
        return Session(self, self._json("POST", "/sessions", json=spec))

    # ---- life cycle -------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()
        self.context.destroy(linger=0)   # closes any socket a session left open

    def __enter__(self) -> ScanClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Session:
    """One scan session: ``positions`` is what to acquire next; ``submit`` sends it."""

    def __init__(self, client: ScanClient, opened: dict) -> None:
        self.client = client
        self.id: str = opened["session_id"]
        self.strategy: str = opened["strategy"]
        self.endpoint: str = opened["data_endpoint"]
        self.model: str | None = opened.get("model")
        self.warnings: list[str] = opened.get("warnings", [])
        self.positions = np.asarray(opened["positions_angstrom"], dtype=np.float64).reshape(-1, 2)
        self.seq: int = opened["seq"]
        self.token: str | None = opened.get("session_token")   # this session's credential
        self.done = False
        self.last_reply: dict | None = None
        self._socket: zmq.Socket | None = None

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            self._socket = self.client.context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.connect(self.endpoint)
        return self._socket

    def _reset_socket(self) -> None:
        """Lazy pirate: after a timeout the old socket may hold a stale reply; start afresh."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def submit(self, frames: np.ndarray, positions_angstrom: np.ndarray, encoding: str = "raw",
               parts: list[bytes] | None = None) -> np.ndarray:
        """Send one batch (frames (n, M, M), the positions actually visited (n, 2) Å); returns
        the next positions (empty when the session is done). Retries the same ``seq`` after a
        timeout and waits while the server is ``busy``; raises the typed error otherwise.
        ``encoding="bslz4"`` with ``parts`` (one Dectris-compressed frame each) forwards
        detector frames untouched."""
        frames = np.asarray(frames)
        if frames.dtype.byteorder == ">":
            frames = frames.astype(frames.dtype.newbyteorder("<"))
        header = batch_header(self.id, self.seq, self.client.token, positions_angstrom, frames.dtype.name,
                              frames.shape, encoding, session_token=self.token)
        data = parts if parts is not None else [np.ascontiguousarray(frames).tobytes()]
        message = [json.dumps(header).encode(), *data]
        reply = self._exchange(message)
        self.last_reply = reply
        self.seq += 1
        self.done = bool(reply["done"])
        self.positions = np.asarray(reply["positions_angstrom"], dtype=np.float64).reshape(-1, 2)
        return self.positions

    def _exchange(self, message: list[bytes]) -> dict:
        attempts = self.client.retries + 1
        busy_wait_s = 0.05
        attempt = 0
        while attempt < attempts:
            socket = self._connect()
            socket.send_multipart(message)
            if not socket.poll(int(self.client.timeout_s * 1000)):
                self._reset_socket()
                attempt += 1
                continue
            reply = json.loads(socket.recv_multipart()[-1])
            if reply.get("type") == "error":
                error = error_for(reply["code"], reply["message"])
                if isinstance(error, Busy):          # our own earlier attempt is still being processed
                    time.sleep(busy_wait_s)
                    busy_wait_s = min(2 * busy_wait_s, 1.0)
                    continue
                raise error
            return reply
        raise ServerUnavailable(f"no reply to batch {self.seq} of session {self.id} after {attempts} attempts "
                                f"of {self.client.timeout_s} s")

    # ---- control ------------------------------------------------------------------------
    @property
    def _owner(self) -> dict[str, str]:
        return {SESSION_TOKEN_HEADER: self.token} if self.token else {}

    def status(self) -> dict:
        return self.client._json("GET", f"/sessions/{self.id}", headers=self._owner)

    def reconstruction(self) -> np.ndarray:
        """The server's current reconstruction (H, W) complex64."""
        import io

        content = self.client._json("GET", f"/sessions/{self.id}/reconstruction", params={"format": "npy"},
                                    headers=self._owner)
        return np.load(io.BytesIO(content), allow_pickle=False)

    def live_view_url(self, with_token: bool = True) -> str:
        """The browser page that follows this session; the server token and this session's
        credential ride in the URL's fragment (``#token=…&session=…``), which browsers never send."""
        page = f"{self.client.url}/sessions/{self.id}/view"
        if not with_token:
            return page
        secrets = [f"token={self.client.token}"] if self.client.token else []
        secrets += [f"session={self.token}"] if self.token else []
        return page + ("#" + "&".join(secrets) if secrets else "")

    def finish(self) -> dict:
        status = self.client._json("DELETE", f"/sessions/{self.id}", headers=self._owner)
        self._reset_socket()
        return status

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.finish()
        except ScanClientError:
            if exc is None:
                raise
