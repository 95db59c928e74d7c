"""The Dectris stream emulator's messages decode as formats.md says (cbor2 for v2, the
HDF5 bitshuffle filter for the bslz4 blobs)."""

from __future__ import annotations

import json

import cbor2
import numpy as np

from scan_server.emulation.stream import v1_messages, v2_messages
from scan_server.service.decode import decode_bslz4


def test_v1_messages_follow_the_legacy_json_stream(recording):
    messages = list(v1_messages(recording))
    assert json.loads(messages[0][0])["htype"] == "dheader-1.0"
    assert json.loads(messages[0][1])["nimages"] == recording.count
    assert json.loads(messages[-1][0])["htype"] == "dseries_end-1.0"
    images = messages[1:-1]
    assert len(images) == recording.count
    for index in (0, 17, recording.count - 1):
        part0, part1, blob, part3 = images[index]
        assert json.loads(part0) == {"htype": "dimage-1.0", "series": 1, "frame": index, "hash": ""}
        described = json.loads(part1)
        bits = 8 * np.dtype(described["type"]).itemsize
        assert described["htype"] == "dimage_d-1.0" and described["encoding"] == f"bs{bits}-lz4<"
        assert described["type"] == recording.frames[index].dtype.name        # uint16 counts
        assert described["size"] == len(blob) and described["shape"] == [64, 64]
        assert json.loads(part3)["htype"] == "dconfig-1.0"
        frame = decode_bslz4([blob], np.dtype(described["type"]), tuple(described["shape"]))[0]
        np.testing.assert_array_equal(frame, np.rint(recording.frames[index]))


def test_v2_messages_decode_with_cbor2(recording):
    def tag_hook(tag, immutable):     # cbor2 ≥ 6 signature; keep the tags to inspect them
        return {"tag": tag.tag, "value": tag.value}

    messages = list(v2_messages(recording))
    assert all(m[:3] == b"\xd9\xd9\xf7" for m in messages)      # self-describe tag 55799 (cbor2 strips it)
    start = cbor2.loads(messages[0], tag_hook=tag_hook)
    assert start["type"] == "start" and start["number_of_images"] == recording.count
    assert cbor2.loads(messages[-1], tag_hook=tag_hook)["type"] == "end"
    for index in (0, recording.count - 1):
        image = cbor2.loads(messages[1 + index], tag_hook=tag_hook)
        assert image["type"] == "image" and image["image_id"] == index
        array = image["data"]["threshold_1"]
        assert array["tag"] == 40
        dims, typed = array["value"]
        assert list(dims) == [64, 64] and typed["tag"] == 69     # little-endian uint16
        compression = typed["value"]
        assert compression["tag"] == 56500
        kind, element_size, blob = compression["value"]
        assert kind == "bslz4" and element_size == 2
        frame = decode_bslz4([blob], np.dtype("<u2"), tuple(dims))[0]
        np.testing.assert_array_equal(frame, np.rint(recording.frames[index]))


def test_count_announces_and_sends_n_frames_then_ends_the_series(recording):
    v1 = list(v1_messages(recording, count=3))
    assert json.loads(v1[0][1])["nimages"] == 3 and len(v1) == 5
    assert json.loads(v1[-1][0])["htype"] == "dseries_end-1.0"
    v2 = [cbor2.loads(m) for m in v2_messages(recording, count=3)]
    assert v2[0]["number_of_images"] == 3 and [m["type"] for m in v2] == ["start", *["image"] * 3, "end"]


def test_the_stream_command_says_it_waits_and_ends_its_series(tmp_path):
    """Run ``scan-client stream --count 3`` against a PULL receiver: it announces that it waits,
    the receiver gets header, 3 frames and the end of the series."""
    import socket as sockets
    import subprocess
    import sys

    import zmq

    from scan_server.physics.simulate import preset, simulate_recording

    path = simulate_recording(preset("small", scan_shape=(4, 4)), 1, tmp_path / "r.h5", progress=False)
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "scan_server.emulation.cli", "stream", str(path), "--count", "3",
                                "--bind", endpoint], stdout=subprocess.PIPE, text=True)
    assert "waiting for a receiver" in process.stdout.readline()
    context = zmq.Context()
    receiver = context.socket(zmq.PULL)
    receiver.connect(endpoint)
    receiver.setsockopt(zmq.RCVTIMEO, 20_000)
    messages = [cbor2.loads(receiver.recv()) for _ in range(5)]
    receiver.close()
    context.term()
    out, _ = process.communicate(timeout=30)
    assert [m["type"] for m in messages] == ["start", "image", "image", "image", "end"]
    assert process.returncode == 0 and "3 frames, end of series" in out
