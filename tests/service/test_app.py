"""The app in-process (``create_app(settings)``): settings, no model, late decisions, expiry."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import OWNER_HOOKS, TOKEN, Wire, acquire, first_batch, spec_for

from scan_server.errors import ParameterError
from scan_server.scanning.baselines import halton_unit
from scan_server.io.canonical import read_recording
from scan_server.service.app import create_app
from scan_server.service.settings import ServiceSettings, load_settings


def _settings(tmp_path: Path, models_dir: Path, **overrides: object) -> ServiceSettings:
    values = {"token": TOKEN, "models_dir": models_dir, "model": "tiny", "device": "cpu", "port": 0, "zmq_port": 0,
              "data_dir": tmp_path / "sessions", "decision_deadline_ms": 0, **overrides}
    return ServiceSettings(**values)


def _client(settings: ServiceSettings) -> TestClient:
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"})
    client.event_hooks = OWNER_HOOKS
    return client


def test_binding_a_public_address_without_a_token_is_refused(tmp_path, models_dir):
    with pytest.raises(ParameterError, match="without a token"):
        create_app(_settings(tmp_path, models_dir, host="0.0.0.0", token=None))
    create_app(_settings(tmp_path, models_dir, host="0.0.0.0"))            # with a token: fine
    create_app(_settings(tmp_path, models_dir, host="::1", token=None))    # loopback: fine


@pytest.mark.parametrize("token", ["short-token", "change-me-to-a-long-random-string"])
def test_short_and_published_tokens_are_refused(tmp_path, models_dir, token):
    """Issue 14, 10: a copied example (its placeholder) or a guessable token never starts a server."""
    with pytest.raises(ParameterError, match="token"):
        load_settings(token=token)


def test_the_example_settings_file_does_not_start_as_it_is():
    example = Path(__file__).parents[2] / "deploy" / "scan-server.env.example"
    token = next(line.split("=", 1)[1] for line in example.read_text().splitlines()
                 if line.startswith("SCAN_SERVER_TOKEN="))
    with pytest.raises(ParameterError, match="published example token"):
        load_settings(token=token)


def test_settings_come_from_environment_file_and_overrides(tmp_path, monkeypatch):
    config = tmp_path / "server.toml"
    config.write_text('port = 9000\nzmq_port = 9001\nidle_timeout_s = 60\n')
    monkeypatch.setenv("SCAN_SERVER_TOKEN", "from-the-environment")
    monkeypatch.setenv("SCAN_SERVER_PORT", "9100")
    settings = load_settings(config, zmq_port=9200)
    assert settings.token_value() == "from-the-environment"
    assert settings.port == 9100            # environment over file
    assert settings.zmq_port == 9200        # command line over both
    assert settings.idle_timeout_s == 60    # file over default
    config.write_text('prot = 1\n')
    with pytest.raises(ParameterError, match="prot"):
        load_settings(config)
    with pytest.raises(ParameterError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_without_a_model_health_says_so_and_only_baselines_are_served(tmp_path, models_dir, recording):
    with _client(_settings(tmp_path, models_dir, model="no-such-model")) as client:
        health = client.get("/health").json()
        assert health["model_loaded"] is False and "not found" in health["model_error"]
        refused = client.post("/sessions", json=spec_for(recording, "adaptive"))
        assert refused.status_code == 503 and refused.json()["code"] == "model_unavailable"
        assert client.get("/model").json()["code"] == "model_unavailable"
        assert client.post("/sessions", json=spec_for(recording, "halton")).status_code == 201


def test_a_late_decision_is_answered_with_the_next_halton_points(tmp_path, models_dir, recording):
    settings = _settings(tmp_path, models_dir, decision_deadline_ms=0.001)
    with _client(settings) as client:
        opened = client.post("/sessions", json=spec_for(recording, "adaptive", total=30)).json()
        wire = Wire(client.app.state.data_plane.endpoint)
        try:
            used = np.zeros(recording.count, dtype=bool)
            positions = np.asarray(opened["positions_angstrom"])
            fov = np.ptp(recording.positions_angstrom, axis=0)
            seed = client.app.state.loaded.model.settings.policy.halton_seed
            for seq in range(3):
                frames, actual = acquire(recording, used, positions)
                reply = wire.batch(opened["session_id"], seq, frames, actual)
                if reply["done"]:
                    break
                assert reply["fallback"] is True
                expected = halton_unit(10, seed, skip=10 * (seq + 1)) * fov
                np.testing.assert_allclose(reply["positions_angstrom"], expected)
                positions = np.asarray(reply["positions_angstrom"])
            assert reply["done"]
            status = client.get(f"/sessions/{opened['session_id']}").json()
            assert status["fallbacks"] == 2
        finally:
            wire.close()


def test_idle_sessions_expire_and_their_recording_is_complete(tmp_path, models_dir, recording):
    with _client(_settings(tmp_path, models_dir, idle_timeout_s=0.5)) as client:
        opened = client.post("/sessions", json=spec_for(recording, "random", total=30)).json()
        wire = Wire(client.app.state.data_plane.endpoint)
        try:
            frames, actual = first_batch(recording, opened)
            wire.batch(opened["session_id"], 0, frames, actual)
        finally:
            wire.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = client.get(f"/sessions/{opened['session_id']}").json()
            if status["status"] != "open":
                break
            time.sleep(0.1)
        assert status["status"] == "expired"
        assert read_recording(status["recording"]).count == 10


def test_too_many_sessions_are_refused(tmp_path, models_dir, recording):
    with _client(_settings(tmp_path, models_dir, max_sessions=1)) as client:
        assert client.post("/sessions", json=spec_for(recording, "halton")).status_code == 201
        second = client.post("/sessions", json=spec_for(recording, "halton"))
        assert second.status_code == 503 and second.json()["code"] == "too_many_sessions"


def test_openapi_schema_documents_every_route(tmp_path, models_dir):
    with _client(_settings(tmp_path, models_dir)) as client:
        schema = client.get("/openapi.json").json()
    assert {"/health", "/model", "/sessions", "/sessions/{session_id}", "/sessions/{session_id}/reconstruction",
            "/metrics"} <= set(schema["paths"])
    assert "AcquisitionSpec" in schema["components"]["schemas"]


@pytest.mark.parametrize("option", ["--port", "--zmq-port"])
def test_a_port_in_use_is_one_error_line(tmp_path, option):
    """`scan-server serve` on a busy port: one `error:` line naming the option, exit 2, no traceback."""
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = ["--zmq-port", "0"] if option == "--port" else ["--port", "0"]
        done = subprocess.run([sys.executable, "-m", "scan_server.cli", "serve", option, str(port), *other,
                               "--model", "", "--data-dir", str(tmp_path / "sessions")],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot listen on 127.0.0.1:") and option in lines[0]


def test_a_field_of_view_the_model_never_saw_is_a_warning(tmp_path, models_dir, recording):
    """A model trained on a 19.8 Å field, asked to scan the recording's 3 Å: the session opens
    with a warning naming the field of view; a matching field opens without one."""
    import json
    import shutil

    models = tmp_path / "models"
    shutil.copytree(models_dir / "tiny", models / "tiny")
    card_path = models / "tiny" / "model_card.json"
    card = json.loads(card_path.read_text())
    geometry = {"detector_px": recording.detector_px,
                "detector_sampling_inv_angstrom": recording.detector_sampling_inv_angstrom,
                "energy_ev": recording.optics.energy_ev, "semiangle_mrad": recording.optics.semiangle_mrad}
    card["data"] = {"geometry": {**geometry, "field_of_view_angstrom": [19.8, 19.8]}}
    card_path.write_text(json.dumps(card))
    with _client(_settings(tmp_path, models)) as client:
        opened = client.post("/sessions", json=spec_for(recording, "adaptive")).json()
        assert len(opened["warnings"]) == 1 and opened["warnings"][0].startswith("field_of_view_angstrom")
    card["data"]["geometry"]["field_of_view_angstrom"] = np.ptp(recording.positions_angstrom, axis=0).tolist()
    card_path.write_text(json.dumps(card))
    with _client(_settings(tmp_path, models)) as client:
        assert client.post("/sessions", json=spec_for(recording, "adaptive")).json()["warnings"] == []


def test_run_scan_returns_the_server_s_warnings():
    from scan_client.microscope import run_scan

    class FakeSession:
        id, done, warnings, last_reply = "s1", False, ["field_of_view_angstrom [3, 3] differs"], None
        positions = np.zeros((2, 2))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, frames, positions):
            self.done = True

        def status(self):
            return {"status": "finished"}

    class FakeClient:
        def open_session(self, spec):
            return FakeSession()

    class StillMicroscope:
        def acquire(self, positions):
            return np.zeros((len(positions), 4, 4)), positions

    result = run_scan(StillMicroscope(), FakeClient(), {})
    assert result.warnings == ["field_of_view_angstrom [3, 3] differs"]


def test_the_openapi_schema_documents_every_status_and_the_session_credential():
    """Issue 14: every route lists the error statuses it can give (with the error body), a
    session's routes need both the bearer token and the session's credential, and every HTTP
    status of an error code appears somewhere."""
    from scan_server.service.errors import HTTP_STATUS, ErrorCode

    schema = create_app(ServiceSettings()).openapi()
    operations = {(method.upper(), path): op for path, ops in schema["paths"].items() for method, op in ops.items()}
    for key, operation in operations.items():
        assert {"413", "500"} <= set(operation["responses"]), key
        for status, response in operation["responses"].items():
            if int(status) >= 400 and key != ("GET", "/health"):      # /health's 503 is its own body
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("/HttpErrorBody"), key
    session_routes = [k for k in operations if k[1].startswith("/sessions/{session_id}") and k[1][-5:] != "/view"]
    assert len(session_routes) == 5
    for key in session_routes:
        assert {"401", "404", "422"} <= set(operations[key]["responses"]), key
        assert operations[key]["security"] == [{"HTTPBearer": [], "session credential": []}], key
    assert schema["components"]["securitySchemes"]["session credential"]["name"] == "X-Session-Token"
    assert {"201", "401", "413", "422", "503", "507"} <= set(operations[("POST", "/sessions")]["responses"])
    assert "409" in operations[("GET", "/sessions/{session_id}/events")]["responses"]
    documented = {int(status) for op in operations.values() for status in op["responses"]}
    assert {HTTP_STATUS[c] for c in ErrorCode if c is not ErrorCode.method_not_allowed} <= documented


def test_health_says_degraded_when_the_data_plane_loop_is_gone(tmp_path, models_dir):
    """Issue 14, 1: /health reports the data plane's own liveness (its loop's heartbeat), not the process's."""
    with _client(_settings(tmp_path, models_dir)) as client:
        assert client.get("/health").json()["data_plane_alive"] is True
        data_plane = client.app.state.data_plane
        data_plane._stop.set()            # the loop ends as if it had died; the HTTP side lives on
        data_plane._thread.join(timeout=5)
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and health.json()["data_plane_alive"] is False


@pytest.mark.parametrize("path", ["/sessions/%2F", "/sessions/", "/model/", "/sessions/x/positions/"])
def test_a_path_with_a_slash_too_many_is_not_found_not_redirected(tmp_path, models_dir, path):
    """Found by the property test: an id of '/' (or a trailing slash) made Starlette answer a
    307 redirect with an empty body, which a client cannot read as an error."""
    with _client(_settings(tmp_path, models_dir)) as client:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404 and response.json()["code"] == "not_found", response
