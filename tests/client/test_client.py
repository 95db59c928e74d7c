"""ScanClient against the real server (typed errors) and against a fake one (retries)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import zmq
from scan_client import (
    BadBatch,
    ModelUnavailable,
    ScanClient,
    ScanClientError,
    ServerUnavailable,
    SessionFinished,
    Unauthorized,
    UnknownSession,
    error_for,
    run_scan,
)
from scan_client.errors import BadSpec, Busy, OutOfOrder, TooManySessions
from service_helpers import TOKEN, acquire, spec_for

from scan_server.service.errors import ErrorCode


def test_every_server_code_has_a_typed_error():
    expected = {"unauthorized": Unauthorized, "unknown_session": UnknownSession, "session_finished": SessionFinished,
                "out_of_order": OutOfOrder, "busy": Busy, "model_unavailable": ModelUnavailable,
                "too_many_sessions": TooManySessions, "unsupported_spec": BadSpec, "wrong_count": BadBatch,
                "bad_shape": BadBatch, "non_finite": BadBatch, "message_too_large": BadBatch}
    for code in ErrorCode:
        error = error_for(code.value, "m")
        assert isinstance(error, ScanClientError) and error.code == code.value
        if code.value in expected:
            assert type(error) is expected[code.value]


class _Microscope:
    def __init__(self, recording):
        self.recording = recording
        self.used = np.zeros(recording.count, dtype=bool)

    def acquire(self, positions):
        return acquire(self.recording, self.used, positions)


def test_run_scan_drives_a_microscope_through_a_session(server, recording):
    with ScanClient(server.url, TOKEN) as client:
        result = run_scan(_Microscope(recording), client, spec_for(recording, "adaptive", total=30))
    assert result.positions_angstrom.shape == (30, 2) and len(result.latencies_ms) == 2
    assert result.status["status"] == "finished" and result.status["positions_acquired"] == 30


def test_typed_errors_from_the_real_server(server, recording):
    with ScanClient(server.url, "wrong") as client, pytest.raises(Unauthorized):
        client.open_session(spec_for(recording, "halton"))
    with ScanClient(server.url, TOKEN) as client:
        with pytest.raises(BadSpec):
            client.open_session(spec_for(recording, "adaptive", subsequence=7))
        session = client.open_session(spec_for(recording, "halton", total=20))
        microscope = _Microscope(recording)
        frames, actual = microscope.acquire(session.positions)
        with pytest.raises(BadBatch) as bad:
            session.submit(frames[:, :32, :32], actual)
        assert bad.value.code == "bad_shape"
        session.submit(frames, actual)                       # the session survived
        assert session.seq == 1 and len(session.positions) == 10
        session.finish()
        with pytest.raises(SessionFinished):
            session.submit(*microscope.acquire(session.positions))
        with pytest.raises(UnknownSession):
            client._json("GET", "/sessions/0123456789abcdef")


def test_an_unreachable_server_is_a_typed_error():
    with ScanClient("http://127.0.0.1:9", TOKEN, timeout_s=1) as client:
        with pytest.raises(ServerUnavailable):
            client.health()


class _FlakyServer:
    """A ROUTER that ignores the first ``drop`` batches, answers ``busy`` once, then answers."""

    def __init__(self, drop: int) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.seen: list[int] = []
        self.drop = drop
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        busy_sent = False
        while self.socket.poll(5000):
            identity, header, *_ = self.socket.recv_multipart()
            seq = json.loads(header)["seq"]
            self.seen.append(seq)
            if len(self.seen) <= self.drop:
                continue
            if not busy_sent:
                busy_sent = True
                reply = {"type": "error", "seq": seq, "code": "busy", "message": "in flight"}
            else:
                reply = {"type": "positions", "session_id": "s", "seq": seq, "positions_angstrom": [[1.0, 2.0]],
                         "done": False, "fallback": False, "timings": {}}
            self.socket.send_multipart([identity, json.dumps(reply).encode()])

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.socket.close(linger=0)
        self.context.term()


def _session_on(client: ScanClient, port: int):
    from scan_client import Session

    return Session(client, {"session_id": "s", "strategy": "halton", "data_endpoint": f"tcp://127.0.0.1:{port}",
                            "positions_angstrom": [[0.0, 0.0]], "seq": 0})


def test_a_lost_reply_is_retried_with_the_same_seq():
    fake = _FlakyServer(drop=2)
    with ScanClient("http://127.0.0.1:9", TOKEN, timeout_s=0.3, retries=3) as client:
        session = _session_on(client, fake.port)
        positions = session.submit(np.zeros((1, 4, 4), np.uint16), [[0.0, 0.0]])
    fake.close()
    np.testing.assert_array_equal(positions, [[1.0, 2.0]])
    assert fake.seen == [0, 0, 0, 0] and session.seq == 1    # two lost, one busy, one answered


def test_no_reply_after_every_retry_raises():
    fake = _FlakyServer(drop=100)
    with ScanClient("http://127.0.0.1:9", TOKEN, timeout_s=0.2, retries=2) as client:
        session = _session_on(client, fake.port)
        with pytest.raises(ServerUnavailable, match="3 attempts"):
            session.submit(np.zeros((1, 4, 4), np.uint16), [[0.0, 0.0]])
    fake.close()
    assert fake.seen == [0, 0, 0] and session.seq == 0
