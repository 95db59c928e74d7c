"""Fault injection (issue 14): the server is killed (SIGKILL: no shutdown code runs) at each of
its persistence steps in turn (``kill_points.POINTS``) — while a session opens, at every step
of storing a batch, while a session finishes (by its last batch, by DELETE, by expiry) — and
restarted on the same data. Then every acknowledged frame is in the recording exactly once,
every acknowledged reply is given again for a retry of its batch, and the scan goes on (or
stays closed) as if nothing had happened."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from service_helpers import Server, ServerDied, Wire, acquire, open_session, spec_for

from scan_server.errors import ParameterError
from scan_server.io.canonical import read_recording
from scan_server.service import kill_points

BATCH_POINTS = [p for p in kill_points.POINTS if p.startswith("batch.")]
FINISH_POINTS = [p for p in kill_points.POINTS if p.startswith("finish.")]
#: a short scan of the tiny model: three steps of ten positions
SCAN = {"strategy": "adaptive", "total": 30, "subsequence": 10}


def armed_server(tmp_path, models_dir, point: str, **settings: str) -> Server:
    return Server(tmp_path / "sessions", models_dir,
                  env={kill_points.KILL_AT_ENV: point, **{f"SCAN_SERVER_{k.upper()}": v for k, v in settings.items()}})


def alive(server: Server) -> bool:
    return server.process is not None and server.process.poll() is None


def wait_for_death(server: Server, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while alive(server):
        assert time.monotonic() < deadline, "the armed kill point was not reached"
        time.sleep(0.1)


def restart_unarmed(server: Server) -> None:
    """Reap the killed process, then start again on the same data and ports, nothing armed."""
    assert not alive(server), "the server should have been killed at its kill point"
    server.stop()
    server.settings.pop("kill_at")
    server.start()


@dataclass
class Scan:
    """A client's view of one session: what was acknowledged, and the batch in flight."""

    opened: dict
    used: np.ndarray
    planned: np.ndarray
    acked: list[tuple[np.ndarray, np.ndarray, dict]] = field(default_factory=list)
    pending: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def open(cls, server: Server, recording) -> Scan:
        opened = open_session(server, recording, **SCAN)
        return cls(opened, np.zeros(recording.count, dtype=bool), np.asarray(opened["positions_angstrom"]))

    @property
    def sid(self) -> str:
        return self.opened["session_id"]

    def step(self, server: Server, wire: Wire, recording) -> dict | None:
        """Send the batch in flight again (a retry) or the next one: its reply, None if the server died."""
        if self.pending is None:
            self.pending = acquire(recording, self.used, self.planned)
        try:
            reply = wire.batch(self.sid, len(self.acked), *self.pending, alive=lambda: alive(server))
        except ServerDied:
            return None
        assert reply["type"] == "positions", reply
        self.acked.append((*self.pending, reply))
        self.pending, self.planned = None, np.asarray(reply["positions_angstrom"])
        return reply

    def run(self, server: Server, wire: Wire, recording) -> bool:
        """Step until done (True) or until the server dies (False)."""
        while True:
            reply = self.step(server, wire, recording)
            if reply is None or reply["done"]:
                return reply is not None


def assert_nothing_lost(server: Server, scan: Scan, status: str) -> None:
    """The session is ``status``; its complete recording holds every acknowledged frame once, in
    order; no batch file is left; every acknowledged reply is given again for a retry."""
    with server.http() as client:
        got = client.get(f"/sessions/{scan.sid}").json()
    frames = np.concatenate([f for f, _, _ in scan.acked]).astype(np.float32)
    positions = np.concatenate([p for _, p, _ in scan.acked])
    assert got["status"] == status and got["positions_acquired"] == len(frames), got
    stored = read_recording(got["recording"])
    np.testing.assert_array_equal(stored.frames[:], frames)
    np.testing.assert_allclose(stored.positions_angstrom, positions)
    folder = server.data_dir / scan.sid
    assert not [*(folder / "batches").iterdir(), *(folder / "estimate").iterdir()]
    wire = Wire(server.endpoint)
    try:
        for seq, (sent, actual, reply) in enumerate(scan.acked):
            assert wire.batch(scan.sid, seq, sent, actual) == reply
    finally:
        wire.close()


@pytest.mark.parametrize("point", BATCH_POINTS)
def test_a_kill_while_a_batch_is_stored_loses_nothing(tmp_path, models_dir, recording, point):
    server = armed_server(tmp_path, models_dir, f"{point}:2").start()     # the second batch
    wire = Wire(server.endpoint)
    try:
        scan = Scan.open(server, recording)
        assert not scan.run(server, wire, recording)
        assert len(scan.acked) == 1 and scan.pending is not None
        wire.close()
        restart_unarmed(server)
        wire = Wire(server.endpoint)
        with server.http() as client:
            resumed = client.get(f"/sessions/{scan.sid}").json()
        assert resumed["status"] == "open" and resumed["next_seq"] == (1 if point == "batch.digest" else 2)
        assert scan.run(server, wire, recording)       # the retry of seq 1 is answered, the scan completes
        assert len(scan.acked) == 3
        assert_nothing_lost(server, scan, "finished")
    finally:
        wire.close()
        server.stop()


def _finish_by(how: str, server: Server, wire: Wire, scan: Scan, recording) -> None:
    """Finish the scan by its last batch, by DELETE or by idle expiry; the server dies on the way."""
    if how == "done":
        assert not scan.run(server, wire, recording) and len(scan.acked) == 2
        return
    assert scan.step(server, wire, recording) is not None
    if how == "delete":
        with pytest.raises(httpx.TransportError), server.http() as client:
            client.delete(f"/sessions/{scan.sid}")
    wait_for_death(server)


#: every finish point by the last batch; DELETE and expiry take the same path (``SessionManager.finish``),
#: tried at its first point
FINISHES = [(point, "done") for point in FINISH_POINTS] + [(FINISH_POINTS[0], "delete"), (FINISH_POINTS[0], "expiry")]


@pytest.mark.parametrize(("point", "how"), FINISHES)
def test_a_kill_while_a_session_finishes_loses_nothing(tmp_path, models_dir, recording, point, how):
    idle = {"idle_timeout_s": "1"} if how == "expiry" else {}
    server = armed_server(tmp_path, models_dir, point, **idle).start()
    wire = Wire(server.endpoint)
    try:
        scan = Scan.open(server, recording)
        _finish_by(how, server, wire, scan, recording)
        wire.close()
        restart_unarmed(server)
        wire = Wire(server.endpoint)
        if how == "done":        # the last batch's reply was stored before finishing: a retry gets it
            reply = scan.step(server, wire, recording)
            assert reply is not None and reply["done"] and reply["positions_angstrom"] == []
        assert_nothing_lost(server, scan, "expired" if how == "expiry" else "finished")
    finally:
        wire.close()
        server.stop()


@pytest.mark.parametrize("point", [p for p in kill_points.POINTS if p.startswith("open.")])
def test_a_kill_while_a_session_opens_leaves_the_server_whole(tmp_path, models_dir, recording, point):
    """The open reply never arrived, so nothing was acknowledged: after the restart the half-open
    session is absent (folder only) or open and empty (indexed; it expires when idle), and the
    next scan runs as on a fresh server."""
    server = armed_server(tmp_path, models_dir, point).start()
    wire = None
    try:
        with pytest.raises(httpx.TransportError), server.http() as client:
            client.post("/sessions", json=spec_for(recording, **SCAN))
        wait_for_death(server)
        restart_unarmed(server)
        with server.http() as client:
            held = client.get("/sessions").json()
        assert [(s["status"], s["positions_acquired"]) for s in held] == \
            ([] if point == "open.folder" else [("open", 0)])
        wire = Wire(server.endpoint)
        scan = Scan.open(server, recording)
        assert scan.run(server, wire, recording)
        assert_nothing_lost(server, scan, "finished")
    finally:
        if wire is not None:
            wire.close()
        server.stop()


def test_a_kill_point_counts_its_passages(monkeypatch):
    monkeypatch.setenv(kill_points.KILL_AT_ENV, "batch.file:2")
    armed = kill_points._Armed()
    armed.read()
    assert [armed.hit(p) for p in ("batch.digest", "batch.file", "batch.digest", "batch.file", "batch.file")] == \
        [False, False, False, True, False]


@pytest.mark.parametrize("value", ["batch.nowhere", "batch.file:0", "batch.file:x"])
def test_a_wrong_kill_point_is_refused_at_start(monkeypatch, value):
    monkeypatch.setenv(kill_points.KILL_AT_ENV, value)
    with pytest.raises(ParameterError, match=kill_points.KILL_AT_ENV):
        kill_points._Armed().read()


def test_unarmed_nothing_happens(monkeypatch):
    monkeypatch.delenv(kill_points.KILL_AT_ENV, raising=False)
    armed = kill_points._Armed()
    assert not any(armed.hit(point) for point in kill_points.POINTS)
