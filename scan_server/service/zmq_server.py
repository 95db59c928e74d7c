"""The data plane: a ZeroMQ ROUTER that takes batch messages and sends positions back.

One thread owns the ROUTER socket. It checks size, header and token, and hands each
batch to a worker thread; at most one batch per session is in flight (a repeat of the
in-flight ``seq`` waits for the same reply, any other message of that session gets
``busy``), so a slow session never holds the others' workers. Replies come back over
an inproc socket and go out without blocking: a client that vanished is simply dropped.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import zmq
from pydantic import BaseModel, ConfigDict, ValidationError

from .decode import batch_digest
from .errors import ErrorCode, ServiceError
from .prometheus_metrics import ServiceMetrics
from .schemas import BatchHeader, ErrorReply
from .sessions import SessionManager
from .settings import ServiceSettings

log = logging.getLogger("scan_server.service")

#: Largest JSON header accepted (positions of a large batch fit easily).
MAX_HEADER_BYTES = 8 * 2**20
#: ``/health`` reports the data plane dead when its loop has not gone round for this long (it polls every 0.1 s).
HEARTBEAT_S = 5.0


def _error(code: ErrorCode, message: str, seq: int | None = None) -> bytes:
    return ErrorReply(code=code.value, message=message, seq=seq).model_dump_json().encode()


class _SeqOnly(BaseModel):
    """The seq of a header, read by pydantic's bounded parser (depth-limited, unlike ``json``)."""

    model_config = ConfigDict(extra="ignore")
    seq: int | None = None


def _seq_of(raw: bytes) -> int | None:
    """Best-effort seq of a header that failed validation (so the client can match the error)."""
    try:
        return _SeqOnly.model_validate_json(raw).seq
    except ValidationError:
        return None


class ZmqServer:
    def __init__(self, settings: ServiceSettings, manager: SessionManager, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.manager = manager
        self.metrics = metrics
        self.token = settings.token_value()
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # The transport drops (and disconnects) anything beyond 4× the limit; between the
        # limit and that, the client gets a message_too_large reply.
        self.router.setsockopt(zmq.MAXMSGSIZE, 4 * settings.max_message_bytes + MAX_HEADER_BYTES)
        if settings.zmq_port:
            self.router.bind(f"tcp://{settings.host}:{settings.zmq_port}")
            self.port = settings.zmq_port
        else:
            self.port = self.router.bind_to_random_port(f"tcp://{settings.host}")
        name = f"inproc://replies-{id(self)}"
        self.replies = self.context.socket(zmq.PULL)
        self.replies.bind(name)
        self._push = self.context.socket(zmq.PUSH)
        self._push.connect(name)
        self._push_lock = threading.Lock()
        self.workers = ThreadPoolExecutor(settings.max_sessions + 2, thread_name_prefix="batch")
        self.inflight: dict[str, tuple[int, str, list[list[bytes]]]] = {}   # session → seq, digest, who waits
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="zmq", daemon=True)
        self.heartbeat = time.monotonic()

    @property
    def endpoint(self) -> str:
        host = self.settings.host if ":" not in self.settings.host else f"[{self.settings.host}]"
        return f"tcp://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.workers.shutdown(wait=True)
        for socket in (self.router, self.replies, self._push):
            socket.close(linger=0)
        self.context.term()

    # ---- the loop (owns the ROUTER) ----------------------------------------------------
    @property
    def alive(self) -> bool:
        """The loop thread runs and went round within the last ``HEARTBEAT_S`` (``/health``)."""
        return self._thread.is_alive() and time.monotonic() - self.heartbeat < HEARTBEAT_S

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.replies, zmq.POLLIN)
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            events = dict(poller.poll(100))
            if self.replies in events:
                while True:
                    try:
                        session_id, reply = self.replies.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    _, _, envelopes = self.inflight.pop(session_id.decode(), (0, "", []))
                    for envelope in envelopes:
                        self._send(envelope, reply)
            if self.router in events:
                while True:
                    try:
                        parts = self.router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        self._receive(parts)
                    except Exception as exc:   # one message never stops the loop that serves every client
                        log.exception("a message could not be handled")
                        self._reject(parts[:1], ErrorCode.internal_error, f"{type(exc).__name__}: {exc}", None)

    def _send(self, envelope: list[bytes], reply: bytes) -> None:
        try:
            self.router.send_multipart([*envelope, reply], zmq.NOBLOCK)
        except zmq.ZMQError:   # the peer is gone or its queue is full: never block the others
            log.warning("reply dropped: client unreachable")

    def _reject(self, envelope: list[bytes], code: ErrorCode, message: str, seq: int | None) -> None:
        self.metrics.errors.labels(code.value, "zmq").inc()
        self._send(envelope, _error(code, message, seq))

    def _receive(self, parts: list[bytes]) -> None:
        envelope = [parts[0]]
        body = parts[1:]
        if body and body[0] == b"":          # a REQ-style empty delimiter: keep it in the reply
            envelope.append(b"")
            body = body[1:]
        if not body:
            return self._reject(envelope, ErrorCode.bad_request, "empty message: send [header, frames]", None)
        raw, data = body[0], body[1:]
        if len(raw) > MAX_HEADER_BYTES:
            return self._reject(envelope, ErrorCode.message_too_large, "header larger than 8 MiB", None)
        size = sum(len(p) for p in data)
        if size > self.settings.max_message_bytes:
            return self._reject(envelope, ErrorCode.message_too_large, f"{size} bytes of frames exceed the "
                                f"limit of {self.settings.max_message_bytes} (max_message_bytes)", _seq_of(raw))
        try:
            header = BatchHeader.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "header"
            return self._reject(envelope, ErrorCode.bad_request, f"{where}: {first['msg']}", _seq_of(raw))
        if self.token and not hmac.compare_digest((header.token or "").encode(), self.token.encode()):
            return self._reject(envelope, ErrorCode.unauthorized, "missing or wrong token", header.seq)
        try:
            self.manager.authorised(header.session_id, header.session_token)
        except ServiceError as exc:
            if exc.code is ErrorCode.unauthorized:   # another client's session: nothing of it is touched
                return self._reject(envelope, exc.code, exc.message, header.seq)
        digest = batch_digest(header, data)
        busy = self.inflight.get(header.session_id)
        if busy is not None:
            if busy[0] == header.seq and busy[1] == digest:
                busy[2].append(envelope)     # a retry of the batch in flight: same reply, once ready
                return None
            if busy[0] == header.seq:
                return self._reject(envelope, ErrorCode.retry_mismatch, f"seq {header.seq} is being processed with "
                                    "other content; a retry must repeat the batch exactly", header.seq)
            return self._reject(envelope, ErrorCode.busy, f"batch {busy[0]} of this session is being processed; "
                                "wait for its reply", header.seq)
        self.inflight[header.session_id] = (header.seq, digest, [envelope])
        self.workers.submit(self._handle, header, data, digest)
        return None

    # ---- workers ---------------------------------------------------------------------
    def _handle(self, header: BatchHeader, data: list[bytes], digest: str) -> None:
        try:
            reply = self.manager.submit(header, data, digest).model_dump_json().encode()
        except ServiceError as exc:
            self.metrics.errors.labels(exc.code.value, "zmq").inc()
            reply = _error(exc.code, exc.message, header.seq)
        except Exception as exc:   # never let a bug kill the data plane; the client gets a reply
            log.exception("batch %s/%d failed", header.session_id, header.seq)
            self.metrics.errors.labels(ErrorCode.internal_error.value, "zmq").inc()
            reply = _error(ErrorCode.internal_error, f"{type(exc).__name__}: {exc}", header.seq)
        with self._push_lock:
            self._push.send_multipart([header.session_id.encode(), reply])
