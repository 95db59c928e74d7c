"""Issue 14's findings that are fixed so far, each as it was reproduced: a deeply nested
header (1), an all-zero batch in an adaptive session (6) and the reconstruction after it (9).
(10, the example's and short tokens: tests/service/test_app.py.)"""

from __future__ import annotations

import io

import numpy as np
import pytest
from service_helpers import Wire, acquire, open_session


def test_a_deeply_nested_header_without_a_token_is_answered_and_the_data_plane_lives_on(server, wire, recording):
    reply = wire.send_raw([b"[" * 1000, b""])
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    other = Wire(server.endpoint)
    try:
        opened = open_session(server, recording, strategy="halton", total=20, subsequence=10)
        frames, actual = acquire(recording, np.zeros(recording.count, dtype=bool),
                                 np.asarray(opened["positions_angstrom"]))
        assert other.batch(opened["session_id"], 0, frames, actual)["type"] == "positions"
    finally:
        other.close()
    with server.http(token=None) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["data_plane_alive"] is True


@pytest.mark.parametrize("strategy", ["adaptive", "value-map", "halton"])
def test_an_all_zero_batch_is_a_normal_batch(server, wire, recording, strategy):
    """A blanked beam: the step is answered like any other, the next batch goes on from it, and
    the reconstruction of no counts is zero (not a 500)."""
    opened = open_session(server, recording, strategy=strategy, total=30, subsequence=10)
    sid = opened["session_id"]
    used = np.zeros(recording.count, dtype=bool)
    frames, actual = acquire(recording, used, np.asarray(opened["positions_angstrom"]))
    reply = wire.batch(sid, 0, np.zeros_like(frames), actual)
    assert reply["type"] == "positions", reply
    assert len(reply["positions_angstrom"]) == 10 and np.isfinite(reply["positions_angstrom"]).all()
    with server.http() as client:
        blank = client.get(f"/sessions/{sid}/reconstruction")
        assert blank.status_code == 200 and not np.load(io.BytesIO(blank.content)).any()
        assert client.get(f"/sessions/{sid}/reconstruction", params={"format": "png"}).status_code == 200
    frames, actual = acquire(recording, used, np.asarray(reply["positions_angstrom"]))
    reply = wire.batch(sid, 1, frames, actual)
    assert reply["type"] == "positions" and reply["seq"] == 1, reply
