"""Property-based runs (hypothesis) against a real server: request bodies and parameters
built from the OpenAPI schema's field names with arbitrary values, and malformed ZeroMQ
messages. Every answer must be a well-formed reply (success or a known error code): never
a 5xx, never silence, and the server keeps serving afterwards."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_helpers import TOKEN, first_batch, open_session

from scan_server.service.errors import ErrorCode

CODES = {c.value for c in ErrorCode}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def schema(server) -> dict:
    with server.http() as client:
        return client.get("/openapi.json").json()


def _spec_bodies(schema: dict, recording) -> st.SearchStrategy[dict]:
    from service_helpers import spec_for

    fields = list(schema["components"]["schemas"]["AcquisitionSpec"]["properties"])
    valid = spec_for(recording, "halton", total=10)
    mutated = st.builds(lambda changes, dropped: {**{k: v for k, v in valid.items() if k not in dropped}, **changes},
                        st.dictionaries(st.sampled_from(fields + ["unknown"]), JSON_VALUES, max_size=3),
                        st.sets(st.sampled_from(fields), max_size=2))
    return mutated | st.dictionaries(st.sampled_from(fields), JSON_VALUES, max_size=len(fields))


def _check(response: httpx.Response, ok: set[int]) -> None:
    assert response.status_code < 500 or response.json()["code"] in {"too_many_sessions", "model_unavailable"}
    if response.status_code not in ok:
        body = response.json()
        assert body["code"] in CODES and body["message"], body


def test_http_routes_answer_arbitrary_input_with_a_known_code(server, schema, recording):
    bodies = _spec_bodies(schema, recording)
    paths = [p for p in schema["paths"] if p != "/health"]

    @PROPERTY
    @given(body=bodies, session_id=st.text(max_size=40), path=st.sampled_from(paths),
           fmt=st.text(max_size=5), token=st.sampled_from([TOKEN, TOKEN, "x", ""]))
    def run(body, session_id, path, fmt, token):
        with server.http(token or None) as client:
            if path == "/sessions":
                response = client.post(path, json=body)
                _check(response, {201})
            else:
                url = path.replace("{session_id}", quote(session_id, safe="") or "x")
                response = client.get(url, params={"format": fmt} if "reconstruction" in path else None)
                _check(response, {200})
                if "{session_id}" in path:
                    _check(client.delete(url), {200})

    run()
    assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.fixture(scope="module")
def wire_for_properties(server):
    from service_helpers import Wire

    wire = Wire(server.endpoint)
    yield wire
    wire.close()


def test_malformed_zmq_messages_get_an_error_reply_and_the_session_survives(server, wire_for_properties, recording):
    wire = wire_for_properties
    opened = open_session(server, recording, strategy="halton", total=20, subsequence=10)
    frames, actual = first_batch(recording, opened)
    valid = {"type": "batch", "session_id": opened["session_id"], "seq": 0, "token": TOKEN,
             "positions_angstrom": actual.tolist(), "dtype": "uint16", "shape": list(frames.shape), "encoding": "raw"}
    headers = st.builds(lambda changes: json.dumps({**valid, **changes}).encode(),
                        st.dictionaries(st.sampled_from(list(valid) + ["extra"]), JSON_VALUES, min_size=1, max_size=3))
    messages = st.one_of(
        st.lists(st.binary(max_size=64), min_size=1, max_size=4),
        st.tuples(headers, st.lists(st.binary(max_size=frames.nbytes + 8), max_size=3)).map(lambda t: [t[0], *t[1]]),
        st.tuples(headers, st.just(frames.tobytes())).map(list))

    @PROPERTY
    @given(parts=messages)
    def run(parts):
        reply = wire.send_raw(parts, timeout_s=30)
        assert reply["type"] in {"error", "positions"}
        if reply["type"] == "error":
            assert reply["code"] in CODES and reply["message"]

    run()
    with server.http() as client:
        status = client.get(f"/sessions/{opened['session_id']}").json()
    if status["next_seq"] == 0:      # no mutation happened to be a valid batch
        reply = wire.batch(opened["session_id"], 0, frames, actual)
        assert reply["type"] == "positions", reply
