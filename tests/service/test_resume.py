"""A server killed mid-session (SIGKILL: no shutdown code runs) and restarted on the same
data: the session resumes where it stopped and its recording holds every frame."""

from __future__ import annotations

import numpy as np
import pytest
from service_helpers import Server, Wire, acquire, first_batch, open_session, run_session

from scan_server.io.canonical import read_recording


@pytest.mark.parametrize("strategy", ["adaptive", "value-map"])
def test_killed_server_resumes_the_session_and_loses_no_frame(tmp_path, models_dir, recording, strategy):
    server = Server(tmp_path / "sessions", models_dir).start()
    wire = Wire(server.endpoint)
    try:
        _, uninterrupted, _ = run_session(server, wire, recording, strategy=strategy, total=50, subsequence=10)
        opened = open_session(server, recording, strategy=strategy, total=50, subsequence=10)
        sid = opened["session_id"]
        used = np.zeros(recording.count, dtype=bool)
        positions, sent, replies = np.asarray(opened["positions_angstrom"]), [], []
        for seq in range(3):
            frames, actual = acquire(recording, used, positions)
            replies.append(wire.batch(sid, seq, frames, actual))
            sent.append((frames, actual))
            positions = np.asarray(replies[-1]["positions_angstrom"])
        server.stop(kill=True)
        wire.close()

        server.start()          # same data dir and ports
        wire = Wire(server.endpoint)
        with server.http() as client:
            status = client.get(f"/sessions/{sid}").json()
        assert status["status"] == "open" and status["next_seq"] == 3 and status["positions_acquired"] == 30
        assert wire.batch(sid, 2, *sent[2]) == replies[2]         # a retry after the crash: same reply
        for seq in range(3, 5):
            frames, actual = acquire(recording, used, positions)
            reply = wire.batch(sid, seq, frames, actual)
            assert reply["type"] == "positions", reply
            # the policy's state was restored: the same decisions as without the crash
            np.testing.assert_allclose(reply["positions_angstrom"], uninterrupted[seq]["positions_angstrom"],
                                       atol=1e-9)
            sent.append((frames, actual))
            positions = np.asarray(reply["positions_angstrom"])
        assert reply["done"]
        with server.http() as client:
            status = client.get(f"/sessions/{sid}").json()
        stored = read_recording(status["recording"])
        assert status["status"] == "finished" and stored.count == 50
        np.testing.assert_array_equal(stored.frames[:], np.concatenate([f for f, _ in sent]).astype(np.float32))
        np.testing.assert_allclose(stored.positions_angstrom, np.concatenate([p for _, p in sent]))
    finally:
        wire.close()
        server.stop()


def test_a_batch_stored_but_not_answered_is_answered_after_restart(tmp_path, models_dir, recording):
    """The crash window between persisting a batch and replying: the reply file is lost,
    the batch is not; after the restart the retry gets an answer and nothing is doubled."""
    server = Server(tmp_path / "sessions", models_dir).start()
    wire = Wire(server.endpoint)
    try:
        opened = open_session(server, recording, strategy="halton", total=30, subsequence=10)
        sid = opened["session_id"]
        frames, actual = first_batch(recording, opened)
        first = wire.batch(sid, 0, frames, actual)
        server.stop(kill=True)
        (tmp_path / "sessions" / sid / "replies" / "000000.json").unlink()
        server.start()
        again = wire.batch(sid, 0, frames, actual)
        assert again["positions_angstrom"] == first["positions_angstrom"]
        with server.http() as client:
            status = client.get(f"/sessions/{sid}").json()
        assert status["positions_acquired"] == 10
    finally:
        wire.close()
        server.stop()
