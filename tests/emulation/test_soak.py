"""``make soak`` in miniature: a short run with the tiny model, a few kills, hostile traffic;
nothing acknowledged may be lost and no hostile message may get an unexpected answer."""

from __future__ import annotations

import json

import pytest

from scan_server.emulation.soak import SoakSettings, frames_digest, run_soak
from scan_server.physics.simulate import preset, simulate_recording


def test_frames_digest_sees_every_frame_and_position(rng):
    frames = rng.random((3, 4, 4)).astype("float32")
    positions = rng.random((3, 2))
    changed = frames.copy()
    changed[2, 3, 3] += 1
    assert frames_digest(frames, positions) == frames_digest(frames.astype("float64"), positions)
    assert frames_digest(changed, positions) != frames_digest(frames, positions)
    assert frames_digest(frames, positions[::-1]) != frames_digest(frames, positions)


@pytest.mark.slow
def test_a_short_soak_loses_nothing(tmp_path, models_dir):
    recording = simulate_recording(preset("small", scan_shape=(20, 20)), 5, tmp_path / "small.h5", progress=False)
    settings = SoakSettings(duration_s=12, clients=2, total_positions=30, subsequence=10, kill_every_s=(4.0, 6.0),
                            hostile_every_s=0.1, between_sessions_s=0.2)
    result = run_soak(settings, tmp_path / "soak", models_dir=models_dir, model="tiny", recording=recording)
    table = result["table"]
    assert result["unexpected"] == [] and table["hostile unexpected"] == 0
    assert table["kills"] >= 1 and table["sessions completed"] >= 1
    assert table["hostile messages (ZeroMQ)"] > 0 and table["hostile messages (HTTP)"] > 0
    assert table["frames acknowledged"] > 0 and table["frames lost"] == 0
    assert table["frames verified"] == table["frames acknowledged"]
    assert json.loads((tmp_path / "soak" / "soak.json").read_text())["table"] == table
