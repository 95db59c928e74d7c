"""``make soak``: a bounded end-to-end run of the service under crashes and hostile clients.

A server (the shipped model, its own data folder) is driven for ``duration_s`` by:
- ``clients`` microscope clients (``scan_client``, the real library with its retries), each
  replaying a simulated recording session after session, cycling through every strategy the
  server serves, and noting a digest of every batch the server acknowledged;
- a killer that ends the server with SIGKILL at random moments and, every other life, arms a
  random persistence kill point (``service.kill_points``) instead, then restarts it on the
  same data at once;
- a hostile client sending, on both planes, the messages of issue 14's findings and generated
  ones (random bytes, random JSON, mutated valid headers, other clients' sessions without
  their credential), each of which must be answered with an error code (an all-zero batch,
  valid, with positions), never with ``internal_error`` or a 5xx, never left unanswered while
  the server is up.

Then the server is restarted once more and every session is read back from disk: each
acknowledged batch must be in its recording, in order, bit for bit (by SHA-256), once. The
table counts sessions, batches, kills, hostile messages, frames acknowledged, on disk and
lost (must be 0), and the server's peak resident memory (Linux ``/proc``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import httpx
import numpy as np
import zmq
from scan_client.client import ScanClient
from scan_client.errors import ScanClientError, ServerUnavailable

from ..contracts import Acquisition
from ..io.canonical import read_recording
from ..physics.simulate import preset, simulate_recording
from ..policy import DEFAULT_MODEL
from ..scanning.virtual_microscope import VirtualMicroscope
from ..service.kill_points import KILL_AT_ENV, POINTS
from .local_server import LocalServer
from .recorded import spec_for

#: the soak's recording: an island with vacuum (every strategy has something to decide), paper geometry
SOAK_RECORDING = ("island", 20261126)
#: a hostile message left unanswered this long, while the server stayed up, is a failure
HOSTILE_REPLY_S = 10.0


@dataclass(frozen=True)
class SoakSettings:
    duration_s: float = 300.0
    clients: int = 4
    total_positions: int = 150
    subsequence: int = 50
    kill_every_s: tuple[float, float] = (15.0, 40.0)
    hostile_every_s: float = 0.2
    acquire_s: float = 0.05          # the microscope's time per batch (50 patterns at 1 kHz)
    between_sessions_s: float = 1.0  # the operator's pause between scans
    seed: int = 0


def frames_digest(frames: np.ndarray, positions_angstrom: np.ndarray) -> str:
    """SHA-256 of a batch as the recording keeps it: frames float32 and positions float64."""
    digest = hashlib.sha256(np.ascontiguousarray(frames, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(positions_angstrom, dtype=np.float64).tobytes())
    return digest.hexdigest()


@dataclass
class SessionLedger:
    """What the client knows of one session: its credential and the digests of acknowledged batches."""

    strategy: str
    token: str | None
    acked: list[tuple[int, str]] = field(default_factory=list)     # (frames, digest) per acknowledged batch


class Ledger:
    """Everything the soak counts (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[str, SessionLedger] = {}
        self.counts: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def fail(self, what: str) -> None:
        with self.lock:
            self.counts["hostile unexpected"] += 1
            if len(self.unexpected) < 20:
                self.unexpected.append(what)

    def victims(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return [(sid, s.token) for sid, s in self.sessions.items()]


class ServerUnderTest:
    """The server subprocess, its restarts (optionally armed at a kill point) and its memory."""

    def __init__(self, server: LocalServer, ledger: Ledger) -> None:
        self.server = server
        self.ledger = ledger
        self.generation = 0
        self.armed: str | None = None
        self.peak_rss_kib = 0
        self.ready = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self.server.start()
        self.ready = True

    def alive(self) -> bool:
        process = self.server.process
        return process is not None and process.poll() is None

    def up(self) -> bool:
        """Started, answering, and not being restarted."""
        return self.ready and self.alive()

    def sample_memory(self) -> None:
        process = self.server.process
        if process is None:
            return
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    def restart(self, arm: str | None) -> None:
        """Kill (if still up: SIGKILL) and start again on the same data, armed at ``arm`` or not."""
        with self._lock:
            self.ready = False
            self.generation += 1         # a message sent across a restart may go unanswered
            self.sample_memory()
            self.server.stop(kill=True)
            self.server.env.pop(KILL_AT_ENV, None)
            if arm is not None:
                self.server.env[KILL_AT_ENV] = arm
            self.armed = arm
            while True:
                try:
                    self.server.start()
                    break
                except ServerUnavailable:     # killed at its kill point before it answered /health (a batch
                    if arm is None:           # arrived first, or the recovery itself reached it): start again
                        raise
                    self.ledger.add(f"kills at kill point {arm} while starting")
                    self.server.stop()
                    self.server.env.pop(KILL_AT_ENV, None)
                    self.armed = arm = None
            self.generation += 1
            self.ready = True


def _client_loop(index: int, settings: SoakSettings, server: ServerUnderTest, acquisition: Acquisition,
                 frames: np.ndarray, strategies: list[str], ledger: Ledger, stop: threading.Event) -> None:
    rng = np.random.default_rng(settings.seed + index)
    with ScanClient(server.server.url, server.server.token, timeout_s=5.0, retries=24) as client:
        turn = index
        while not stop.is_set():
            strategy = strategies[turn % len(strategies)]
            turn += 1
            spec = spec_for(acquisition, strategy, settings.total_positions, settings.subsequence,
                            seed=int(rng.integers(2**31)), label=f"soak client {index}")
            try:
                session = client.open_session(spec)
            except ScanClientError:          # the server is down or restarting: nothing was acknowledged
                ledger.add("opens refused while down")
                time.sleep(0.5)
                continue
            entry = SessionLedger(strategy, session.token)
            with ledger.lock:
                ledger.sessions[session.id] = entry
            microscope = VirtualMicroscope(acquisition.positions_angstrom, frames)
            try:
                while not session.done and not stop.is_set():
                    exposure = microscope.acquire(session.positions)
                    stop.wait(settings.acquire_s)
                    session.submit(exposure.frames, exposure.positions_angstrom)
                    with ledger.lock:
                        entry.acked.append((len(exposure.frames),
                                            frames_digest(exposure.frames, exposure.positions_angstrom)))
                ledger.add("sessions completed" if session.done else "sessions left open at the end")
                stop.wait(settings.between_sessions_s)
            except ServerUnavailable:
                ledger.add("sessions abandoned (no reply after every retry)")
            except ScanClientError as exc:
                ledger.fail(f"client {index}, session {session.id}: {exc}")


def _killer_loop(settings: SoakSettings, server: ServerUnderTest, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(settings.seed)
    while not stop.is_set():
        deadline = time.monotonic() + rng.uniform(*settings.kill_every_s)
        while time.monotonic() < deadline and server.alive() and not stop.is_set():
            server.sample_memory()
            time.sleep(0.25)
        if stop.is_set():
            return
        if not server.alive():
            ledger.add(f"kills at kill point {server.armed}" if server.armed else "server exits (unexpected)")
        else:
            ledger.add("kills at a random moment")
        arm = f"{rng.choice(list(POINTS))}:{rng.randint(1, 4)}" if rng.random() < 0.5 else None
        try:
            server.restart(arm)
        except ServerUnavailable as exc:       # the server does not come back: the soak has failed
            ledger.fail(f"the server did not restart: {exc}")
            stop.set()
            return


class _Hostile:
    """The hostile client: one message at a time, on either plane, each checked."""

    def __init__(self, settings: SoakSettings, server: ServerUnderTest, acquisition: Acquisition,
                 ledger: Ledger) -> None:
        self.settings = settings
        self.server = server
        self.acquisition = acquisition
        self.ledger = ledger
        self.rng = random.Random(settings.seed + 99)
        self.context = zmq.Context()
        self.socket: zmq.Socket | None = None
        self.http = httpx.Client(base_url=server.server.url, timeout=HOSTILE_REPLY_S,
                                 headers={"Authorization": f"Bearer {server.server.token}"})
        self.own: dict | None = None      # the hostile client's own session: id, credential, seq, positions

    # ---- the two planes ---------------------------------------------------------------
    def send(self, parts: list[bytes], what: str, allowed: set[str] | None = None) -> dict | None:
        """One ZeroMQ message; its reply must be an error (of ``allowed`` codes, if given) — never
        internal_error — unless ``allowed`` contains "positions"."""
        generation = self.server.generation
        if self.socket is None:
            self.socket = self.context.socket(zmq.DEALER)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.connect(self.server.server.endpoint)
        self.socket.send_multipart(parts)
        if not self.socket.poll(int(HOSTILE_REPLY_S * 1000)):
            self.socket.close(linger=0)
            self.socket = None
            if generation == self.server.generation and self.server.up():
                self.ledger.fail(f"zmq {what}: no reply in {HOSTILE_REPLY_S} s")
            return None
        reply = json.loads(self.socket.recv_multipart()[-1])
        kind = reply.get("code") if reply.get("type") == "error" else reply.get("type")
        self.ledger.add("hostile messages (ZeroMQ)")
        if kind == "internal_error" or (allowed is not None and kind not in allowed):
            self.ledger.fail(f"zmq {what}: {reply}")
        return reply

    def request(self, method: str, path: str, what: str, allowed: set[int], closed_ok: bool = False,
                **kwargs: object) -> None:
        """One HTTP request; its status must be in ``allowed`` and an error must carry a code.
        ``closed_ok``: the server may also close the connection while the body is still being
        sent (it answers 413 before reading a body that is too large; a client that is still
        writing cannot read that answer)."""
        generation = self.server.generation
        try:
            response = self.http.request(method, path, **kwargs)
        except (httpx.WriteError, httpx.RemoteProtocolError) if closed_ok else ():
            self.ledger.add("hostile messages (HTTP)")
            return
        except httpx.HTTPError:
            if generation == self.server.generation and self.server.up():
                self.ledger.fail(f"http {what}: no answer")
            return
        self.ledger.add("hostile messages (HTTP)")
        if response.status_code not in allowed:
            self.ledger.fail(f"http {what}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and "code" not in response.json():
            self.ledger.fail(f"http {what}: an error without a code: {response.text[:200]}")

    # ---- the messages -------------------------------------------------------------------
    def header(self, **overrides: object) -> dict:
        own = self.own or {"session_id": "0" * 16, "token": None, "seq": 0, "positions": [[1.0, 1.0]]}
        n = len(own["positions"])
        return {"type": "batch", "session_id": own["session_id"], "seq": own["seq"], "token": self.server.server.token,
                "session_token": own["token"], "positions_angstrom": own["positions"], "dtype": "uint16",
                "shape": [n, self.acquisition.detector_px, self.acquisition.detector_px], "encoding": "raw",
                **overrides}

    def zeros(self, n: int | None = None) -> bytes:
        m = self.acquisition.detector_px
        return bytes(2 * (n if n is not None else len(self.own["positions"]) if self.own else 1) * m * m)

    def ensure_own(self) -> None:
        if self.own is not None:
            return
        spec = spec_for(self.acquisition, "halton", 10000, 10, seed=self.rng.randrange(2**31), label="hostile")
        try:
            opened = self.http.post("/sessions", json=spec).json()
            self.own = {"session_id": opened["session_id"], "token": opened["session_token"], "seq": 0,
                        "positions": opened["positions_angstrom"]}
        except (httpx.HTTPError, KeyError, ValueError):
            self.own = None

    #: a bad batch at the own session's seq may also meet a batch already stored there (a mutated header that
    #: happened to be valid moved the session on without the hostile client knowing): the replay check comes first
    STALE_SEQ = {"retry_mismatch"}

    def one(self) -> None:
        self.ensure_own()
        choice = self.rng.randrange(14)
        victims = self.ledger.victims()
        victim = self.rng.choice(victims)[0] if victims else "f" * 16
        m = self.acquisition.detector_px
        if choice == 0:
            self.send([b"[" * self.rng.randint(100, 5000), b""], "deeply nested header", {"bad_request"})
        elif choice == 1:
            self.send([self.rng.randbytes(self.rng.randint(1, 2000)), self.rng.randbytes(16)], "random bytes")
        elif choice == 2:
            self.send([json.dumps(_random_json(self.rng, 6)).encode(), b""], "random JSON")
        elif choice == 3:
            header = self.header()
            key = self.rng.choice(list(header))
            header[key] = _random_json(self.rng, 2)
            self.send([json.dumps(header).encode(), self.zeros()], f"mutated header ({key})")
        elif choice == 4:
            self.send([json.dumps(self.header(session_id=victim, session_token=None, seq=0)).encode(), self.zeros()],
                      "another's session without its credential", {"unauthorized", "unknown_session"})
        elif choice == 5 and self.own:
            n = 5000
            self.send([json.dumps(self.header(shape=[n, m, m], encoding="bslz4",
                                              positions_angstrom=[self.own["positions"][0]] * n)).encode(),
                       *[b"\0" * 12] * n], "declared count far above the asked", {"wrong_count", *self.STALE_SEQ})
        elif choice == 6 and self.own:
            self.send([json.dumps(self.header(encoding="bslz4")).encode(),
                       *[self.rng.randbytes(40) for _ in self.own["positions"]]], "garbage bslz4",
                      {"bad_encoding", "wrong_count", *self.STALE_SEQ})
        elif choice == 7 and self.own:
            nan = np.full((len(self.own["positions"]), m, m), np.nan, np.float32)
            self.send([json.dumps(self.header(dtype="float32")).encode(), nan.tobytes()], "NaN frames",
                      {"non_finite", *self.STALE_SEQ})
        elif choice == 8 and self.own:
            self.step_own_with_zeros()
        elif choice == 9 and self.own and self.own["seq"] > 0:
            header = self.header(seq=self.own["seq"] - 1, positions_angstrom=self.own["previous"])
            parts = [json.dumps(header).encode(), bytes([1]) * (2 * len(self.own["previous"]) * m * m)]
            self.send(parts, "a retry with other content", {"retry_mismatch"})
        elif choice == 10:
            self.request("GET", f"/sessions/{victim}", "another's session without its credential", {401, 404})
        elif choice == 11:
            self.request("DELETE", f"/sessions/{victim}", "delete another's session with a wrong credential",
                         {401, 404}, headers={"X-Session-Token": "x" * 32})
        elif choice == 12:
            self.request("POST", "/sessions", "a random session spec", {422}, json=_random_json(self.rng, 4))
        else:
            self.request("POST", "/sessions", "a body over the limit", {413}, closed_ok=True,
                         content=b"{" * (2 * 2**20))

    def step_own_with_zeros(self) -> None:
        """An all-zero batch (a blanked beam) in the own session: valid, answered with positions."""
        own = self.own
        reply = self.send([json.dumps(self.header()).encode(), self.zeros()], "an all-zero batch",
                          {"positions", "session_finished", "out_of_order"})
        if reply is None or reply.get("type") != "positions" or reply.get("done"):
            self.own = None          # finished, or moved on by a mutated header that happened to be valid
            return
        own["previous"], own["positions"], own["seq"] = own["positions"], reply["positions_angstrom"], own["seq"] + 1

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.server.up():
                try:
                    self.one()
                except Exception as exc:          # the soak itself must not stop; the failure is counted
                    self.ledger.fail(f"hostile client raised {exc!r}")
            stop.wait(self.settings.hostile_every_s)
        if self.socket is not None:
            self.socket.close(linger=0)
        self.context.term()
        self.http.close()


def _random_json(rng: random.Random, depth: int) -> object:
    kinds = ["int", "float", "str", "null", "bool"] + (["list", "dict"] if depth > 0 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, -1, 1, 2**63, -(2**70), rng.randint(-10**6, 10**6)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, rng.uniform(-1e3, 1e3)])
    if kind == "str":
        return "".join(rng.choice("abc[]{}\"\\é\0") for _ in range(rng.randint(0, 50)))
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 5))]
    return {rng.choice(["type", "seq", "shape", "session_id", "x"]): _random_json(rng, depth - 1)
            for _ in range(rng.randint(0, 5))}


def verify(server: LocalServer, ledger: Ledger) -> dict[str, int]:
    """Read every session back (finishing those left open): frames acknowledged, on disk,
    verified (each acknowledged batch in its place, by digest), lost, and stored but never acknowledged."""
    totals: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {server.token}"}) as http:
        for sid, entry in ledger.sessions.items():
            owner = {"X-Session-Token": entry.token or ""}
            status = http.get(f"/sessions/{sid}", headers=owner).json()
            if status["status"] == "open":
                status = http.delete(f"/sessions/{sid}", headers=owner).json()
            acked = sum(n for n, _ in entry.acked)
            verified = 0
            with h5py.File(status["recording"], "r") as f:
                frames, positions = f["frames"], f["positions_angstrom"]
                ends = np.cumsum([n for n, _ in entry.acked], dtype=int)
                for (n, digest), end in zip(entry.acked, ends):
                    if end <= len(frames) and frames_digest(frames[end - n:end], positions[end - n:end]) == digest:
                        verified += n
                totals["frames on disk"] += len(frames)
            totals["frames acknowledged"] += acked
            totals["frames verified"] += verified
            totals["frames lost"] += acked - verified
            totals["frames stored, never acknowledged"] += status["positions_acquired"] - acked
    return dict(totals)


def run_soak(settings: SoakSettings, out: Path, models_dir: Path = Path("models"), model: str = DEFAULT_MODEL,
             recording: Path | None = None) -> dict:
    """Run the soak; the table's figures (also written to ``out/soak.json`` and ``out/soak.md``)."""
    out.mkdir(parents=True, exist_ok=True)
    if recording is None:
        recording = out / f"{SOAK_RECORDING[0]}_{SOAK_RECORDING[1]}.h5"
        if not recording.exists():
            simulate_recording(preset("paper", family=SOAK_RECORDING[0]), SOAK_RECORDING[1], recording, progress=False)
    acquisition = read_recording(recording)
    frames = np.asarray(acquisition.frames)
    ledger = Ledger()
    local = LocalServer(out / "sessions", out / "server.log",
                        models_dir=str(Path(models_dir).resolve()), model=model, max_message_bytes=str(8 * 2**20))
    server = ServerUnderTest(local, ledger)
    started = time.monotonic()
    server.start()
    strategies = httpx.get(f"{local.url}/health").json()["strategies"]
    stop = threading.Event()
    hostile = _Hostile(settings, server, acquisition, ledger)
    threads = [threading.Thread(target=_client_loop, args=(i, settings, server, acquisition, frames, strategies,
                                                           ledger, stop), daemon=True) for i in range(settings.clients)]
    threads += [threading.Thread(target=_killer_loop, args=(settings, server, ledger, stop), daemon=True),
                threading.Thread(target=hostile.loop, args=(stop,), daemon=True)]
    try:
        for thread in threads:
            thread.start()
        stop.wait(settings.duration_s)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        server.restart(None)          # the last word: everything is read back from disk
        figures = verify(local, ledger)
        server.sample_memory()
    finally:
        local.stop()
    counts = dict(ledger.counts)
    table = {
        "duration (s)": round(time.monotonic() - started),
        "strategies": ", ".join(strategies),
        "sessions": len(ledger.sessions),
        **{k: v for k, v in sorted(counts.items()) if k.startswith("sessions")},
        "batches acknowledged": sum(len(s.acked) for s in ledger.sessions.values()),
        "kills": sum(v for k, v in counts.items() if k.startswith("kills")),
        **{k: v for k, v in sorted(counts.items()) if k.startswith(("kills", "server exits", "opens"))},
        **{k: v for k, v in sorted(counts.items()) if k.startswith("hostile")},
        "hostile unexpected": counts.get("hostile unexpected", 0),
        **figures,
        "peak memory of the server (MiB)": round(server.peak_rss_kib / 1024),
        "data folder at the end (MiB)": round(sum(p.stat().st_size for p in (out / "sessions").rglob("*")
                                                  if p.is_file()) / 2**20),
    }
    (out / "soak.json").write_text(json.dumps({"settings": asdict(settings), "table": table,
                                               "unexpected": ledger.unexpected}, indent=1))
    lines = ["| quantity | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in table.items()]]
    (out / "soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    for what in ledger.unexpected:
        print(f"unexpected: {what}")
    return {"table": table, "unexpected": ledger.unexpected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=SoakSettings.duration_s)
    parser.add_argument("--clients", type=int, default=SoakSettings.clients)
    parser.add_argument("--out", type=Path, default=Path("soak_out"))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run_soak(SoakSettings(duration_s=args.duration_s, clients=args.clients, seed=args.seed), args.out,
                      args.models_dir, args.model)
    table = result["table"]
    ok = table["frames lost"] == 0 and table["hostile unexpected"] == 0 and not result["unexpected"]
    print("soak: " + ("passed" if ok else "FAILED") + f" (frames lost {table['frames lost']}, "
          f"hostile unexpected {table['hostile unexpected']})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
