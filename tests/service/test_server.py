"""The real server (a subprocess on loopback): endpoints, whole sessions, errors, retries, isolation."""

from __future__ import annotations

import json
import threading

import httpx
import numpy as np
import pytest
from service_helpers import CREDENTIALS, TOKEN, Wire, first_batch, open_session, run_session, spec_for

from scan_server.io.canonical import read_recording
from scan_server.service.decode import encode_bslz4


def test_health_answers_without_token_and_reports_the_model(server):
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["model_loaded"] is True and body["model"] == "tiny"
    assert body["device"] == "cpu" and body["data_endpoint"] == server.endpoint


@pytest.mark.parametrize("method, path", [("get", "/model"), ("get", "/metrics"), ("post", "/sessions"),
                                          ("get", "/sessions/0123456789abcdef"),
                                          ("delete", "/sessions/0123456789abcdef")])
@pytest.mark.parametrize("token", [None, "wrong"])
def test_every_route_but_health_needs_the_token(server, method, path, token):
    with server.http(token) as client:
        response = getattr(client, method)(path)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_model_card_is_served(server):
    with server.http() as client:
        card = client.get("/model").json()
    assert card["name"] == "tiny" and card["settings"]["preset"] == "tiny"


def test_adaptive_session_over_zmq_persists_every_frame(server, wire, recording):
    opened, replies, sent = run_session(server, wire, recording, strategy="adaptive", total=40, subsequence=10)
    assert [len(r["positions_angstrom"]) for r in replies] == [10, 10, 10, 0]
    assert [r["done"] for r in replies] == [False, False, False, True]
    assert all(r["timings"]["reconstruct_ms"] > 0 for r in replies[:-1])
    fov = np.ptp(recording.positions_angstrom, axis=0)
    for reply in replies[:-1]:
        positions = np.asarray(reply["positions_angstrom"])
        assert ((positions >= 0) & (positions <= fov + 1e-9)).all()
    with server.http() as client:
        status = client.get(f"/sessions/{opened['session_id']}").json()
        image = client.get(f"/sessions/{opened['session_id']}/reconstruction", params={"format": "png"})
    assert status["status"] == "finished" and status["positions_acquired"] == 40 and status["next_seq"] == 4
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
    import io

    from PIL import Image

    with Image.open(io.BytesIO(image.content)) as png:  # the scanned field, enlarged: not a small grid
        assert min(png.size) >= 512 and abs(png.size[0] - png.size[1]) <= 0.1 * max(png.size)
    stored = read_recording(status["recording"])        # the project's own reader, complete file
    np.testing.assert_array_equal(stored.frames[:], np.concatenate([f for f, _ in sent]).astype(np.float32))
    np.testing.assert_allclose(stored.positions_angstrom, np.concatenate([p for _, p in sent]))
    assert stored.optics.energy_ev == recording.optics.energy_ev


def test_value_map_session_decides_without_a_reconstruction(server, wire, recording):
    opened, replies, _ = run_session(server, wire, recording, strategy="value-map", total=35, subsequence=10)
    assert [len(r["positions_angstrom"]) for r in replies] == [10, 10, 5, 0]
    assert not any(r["fallback"] for r in replies)
    assert all(r["timings"]["reconstruct_ms"] < 1.0 for r in replies)  # no reconstruction: a check, microseconds
    fov = np.ptp(recording.positions_angstrom, axis=0)
    chosen = np.concatenate([np.asarray(r["positions_angstrom"]).reshape(-1, 2) for r in replies])
    assert ((chosen >= 0) & (chosen <= fov + 1e-9)).all() and len(np.unique(chosen, axis=0)) == len(chosen)
    # the detector the session measured from its own patterns: an ideal simulated one, as its spec says
    with server.http() as client:
        detector = client.get(f"/sessions/{opened['session_id']}").json()["detector"]
    assert detector["patterns"] == 35 and not detector["radius_disagrees"] and detector["hot_pixels"] == 0
    assert abs(detector["radius_px"] / detector["nominal_radius_px"] - 1) < 0.02


def test_a_session_that_reconstructs_uses_the_detector_it_measured(server, wire, recording):
    opened, replies, _ = run_session(server, wire, recording, strategy="adaptive", total=30, subsequence=10)
    with server.http() as client:
        detector = client.get(f"/sessions/{opened['session_id']}").json()["detector"]
    # an ideal simulated detector: the aperture that fits its patterns is the metadata's, no point-spread
    assert abs(detector["reconstruction_semiangle_mrad"] / recording.optics.semiangle_mrad - 1) < 0.02
    assert detector["point_spread_px"] == 0.0


@pytest.mark.parametrize("strategy", ["halton", "random", "raster"])
def test_baseline_sessions_are_served_the_same_way(server, wire, recording, strategy):
    opened, replies, _ = run_session(server, wire, recording, strategy=strategy, total=25, subsequence=10)
    assert len(opened["positions_angstrom"]) == 10
    assert [len(r["positions_angstrom"]) for r in replies] == [10, 5, 0]


def test_reconstruction_npy_is_complex(server, wire, recording):
    opened = open_session(server, recording, strategy="halton", total=20, subsequence=10)
    frames, actual = first_batch(recording, opened)
    wire.batch(opened["session_id"], 0, frames, actual)
    with server.http() as client:
        response = client.get(f"/sessions/{opened['session_id']}/reconstruction")
    import io
    potential = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert potential.dtype == np.complex64 and potential.ndim == 2 and np.isfinite(potential).all()


def test_a_repeated_seq_gets_the_same_reply_without_a_second_step(server, wire, recording):
    opened = open_session(server, recording, strategy="adaptive", total=40, subsequence=10)
    frames, actual = first_batch(recording, opened)
    first = wire.batch(opened["session_id"], 0, frames, actual)
    again = wire.batch(opened["session_id"], 0, frames, actual)
    assert again == first
    with server.http() as client:
        status = client.get(f"/sessions/{opened['session_id']}").json()
    assert status["positions_acquired"] == 10 and status["next_seq"] == 1


def _bad_batches(session_id: str, frames: np.ndarray, positions: np.ndarray) -> list[tuple[str, list[bytes]]]:
    """(expected code, message parts) for every bad input of the protocol."""

    def header(**overrides: object) -> bytes:
        base = {"type": "batch", "session_id": session_id, "seq": 0, "token": TOKEN,
                "session_token": CREDENTIALS.get(session_id),
                "positions_angstrom": positions.tolist(), "dtype": "uint16", "shape": list(frames.shape),
                "encoding": "raw"}
        return json.dumps({**base, **overrides}).encode()

    raw = frames.tobytes()
    nan = frames.astype(np.float32)
    nan[0, 0, 0] = np.nan
    far = positions.copy()
    far[3] = [1e3, 0.0]
    return [
        ("bad_request", [b"{not json", raw]),
        ("bad_request", [header(type="hello"), raw]),
        ("bad_request", [header(seq=-1), raw]),
        ("unauthorized", [header(token="nope"), raw]),
        ("unauthorized", [header(token=None), raw]),
        ("unauthorized", [header(session_token="not-the-credential"), raw]),
        ("unauthorized", [header(session_token=None), raw]),
        ("unknown_session", [header(session_id="ffffffffffffffff"), raw]),
        ("out_of_order", [header(seq=5), raw]),
        ("count_mismatch", [header(positions_angstrom=positions[:-1].tolist()), raw]),
        ("wrong_count", [header(positions_angstrom=positions[:-2].tolist(),
                                shape=[len(frames) - 2, *frames.shape[1:]]), frames[:-2].tobytes()]),
        ("bad_shape", [header(shape=[len(frames), 32, 128]), raw]),
        ("bad_dtype", [header(dtype="complex64"), raw]),
        ("bad_encoding", [header(), raw[:-2]]),
        ("bad_encoding", [header(), raw, raw]),
        ("bad_encoding", [header(encoding="bslz4"), b"\x00" * 40] + [b"\x00" * 40] * (len(frames) - 1)),
        ("non_finite", [header(dtype="float32"), nan.tobytes()]),
        ("invalid_positions", [header(positions_angstrom=far.tolist()), raw]),
        ("message_too_large", [header(), b"\x00" * (2**20 + 1)]),
    ]


def test_every_bad_input_gets_its_code_and_the_session_stays_usable(server, wire, recording):
    opened = open_session(server, recording, strategy="halton", total=20, subsequence=10)
    frames, actual = first_batch(recording, opened)
    for code, parts in _bad_batches(opened["session_id"], frames, actual):
        reply = wire.send_raw(parts)
        assert reply["type"] == "error" and reply["code"] == code, (code, reply)
        assert reply["message"]
    with server.http() as client:
        status = client.get(f"/sessions/{opened['session_id']}").json()
    assert status["positions_acquired"] == 0 and status["next_seq"] == 0
    good = wire.batch(opened["session_id"], 0, frames, actual)
    assert good["type"] == "positions" and len(good["positions_angstrom"]) == 10


def test_bslz4_frames_as_a_detector_sends_them(server, wire, recording):
    opened = open_session(server, recording, strategy="raster", total=10, subsequence=10)
    frames, actual = first_batch(recording, opened)
    header = {"type": "batch", "session_id": opened["session_id"], "seq": 0, "token": TOKEN,
              "session_token": opened["session_token"],
              "positions_angstrom": actual.tolist(), "dtype": "uint16", "shape": list(frames.shape),
              "encoding": "bslz4"}
    reply = wire.send_raw([json.dumps(header).encode(), *[encode_bslz4(f) for f in frames]])
    assert reply["type"] == "positions" and reply["done"]
    with server.http() as client:
        stored = read_recording(client.get(f"/sessions/{opened['session_id']}").json()["recording"])
    np.testing.assert_array_equal(stored.frames[:], frames.astype(np.float32))


def test_bad_session_specs_are_refused_with_a_code(server, recording):

    with server.http() as client:
        wrong_step = client.post("/sessions", json=spec_for(recording, "adaptive", subsequence=7))
        odd = client.post("/sessions", json={**spec_for(recording), "detector_px": 63})
        huge = client.post("/sessions", json=spec_for(recording, "halton", total=10**6))
        extra = client.post("/sessions", json={**spec_for(recording), "surprise": 1})
    assert wrong_step.status_code == 422 and wrong_step.json()["code"] == "unsupported_spec"
    assert odd.status_code == 422 and odd.json()["code"] == "bad_request"
    assert huge.json()["code"] == "unsupported_spec"
    assert extra.json()["code"] == "bad_request"


def test_two_concurrent_sessions_do_not_interfere(server, recording):
    """Two sessions at once give the same positions and recordings as each alone."""
    alone = {}
    for strategy in ("halton", "adaptive"):
        wire = Wire(server.endpoint)
        alone[strategy] = run_session(server, wire, recording, strategy=strategy, total=30, subsequence=10)
        wire.close()
    together: dict[str, tuple] = {}

    def play(strategy: str) -> None:
        wire = Wire(server.endpoint)
        try:
            together[strategy] = run_session(server, wire, recording, strategy=strategy, total=30, subsequence=10)
        finally:
            wire.close()

    threads = [threading.Thread(target=play, args=(s,)) for s in ("halton", "adaptive")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for strategy in ("halton", "adaptive"):
        solo_replies = [r["positions_angstrom"] for r in alone[strategy][1]]
        both_replies = [r["positions_angstrom"] for r in together[strategy][1]]
        assert len(both_replies) == len(solo_replies)
        for a, b in zip(both_replies, solo_replies):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
        assert together[strategy][0]["session_id"] != alone[strategy][0]["session_id"]


def test_finishing_a_session_closes_its_recording(server, wire, recording):
    opened = open_session(server, recording, strategy="halton", total=30, subsequence=10)
    frames, actual = first_batch(recording, opened)
    wire.batch(opened["session_id"], 0, frames, actual)
    with server.http() as client:
        finished = client.delete(f"/sessions/{opened['session_id']}").json()
        again = client.delete(f"/sessions/{opened['session_id']}").json()
    assert finished["status"] == "finished" and again["status"] == "finished"
    assert read_recording(finished["recording"]).count == 10
    reply = wire.batch(opened["session_id"], 1, frames, actual)
    assert reply["code"] == "session_finished"


def test_metrics_report_stage_latencies(server, wire, recording):
    run_session(server, wire, recording, strategy="adaptive", total=20, subsequence=10)
    with server.http() as client:
        text = client.get("/metrics").text
    for stage in ("decode", "persist", "reconstruct", "decide"):
        assert f'scan_server_stage_seconds_count{{stage="{stage}"}}' in text
    assert "scan_server_step_seconds_bucket" in text and "scan_server_errors_total" in text
