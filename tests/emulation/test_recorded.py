"""End to end at tiny size: a server subprocess, a replay of a small recording (Dectris
files, as an instrument would leave them) with every strategy, a well-formed report."""

from __future__ import annotations

import json
import subprocess
import sys

from service_helpers import TOKEN

from scan_server.io.canonical import read_recording
from scan_server.io.dectris import write_dectris
from scan_server.physics.simulate import preset, simulate_recording


def test_replay_with_every_strategy_writes_the_evaluation_report(server, tmp_path):
    canonical = simulate_recording(preset("small", scan_shape=(16, 16)), 11, tmp_path / "small.h5", progress=False)
    master = tmp_path / "small_master.h5"
    write_dectris(master, read_recording(canonical))
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "scan_server.emulation.cli", "replay", str(master), "--server", server.url,
                           "--token", TOKEN, "--positions", "30", "--final-iterations", "5", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["recordings"] == ["small"] and report["positions"] == [30]
    for strategy in ("value-map", "adaptive", "halton", "random", "raster", "full"):
        assert 0 < report[strategy]["ssim_mean"] <= 1
    assert set(report["latency_ms"]) == {"value-map", "adaptive", "halton", "random", "raster"}
    assert report["latency_ms"]["adaptive"]["steps"] == 2 and report["latency_ms"]["adaptive"]["p95"] > 0
    assert "q_ssim_vs_halton" in report
    assert (out / "figures" / "small.png").stat().st_size > 10_000
    for strategy in ("value-map", "adaptive", "halton", "random", "raster"):
        rows = (out / "positions" / "small" / f"{strategy}.csv").read_text().splitlines()
        assert len(rows) == 31          # header + 30 distinct recorded positions
        assert len(set(rows[1:])) == 30
    assert "p95 (ms)" in (out / "report.md").read_text()
    assert "error" not in done.stderr.lower()


def test_replay_without_a_server_is_one_clear_error(tmp_path):
    canonical = simulate_recording(preset("small", scan_shape=(8, 8)), 12, tmp_path / "tiny.h5", progress=False)
    done = subprocess.run([sys.executable, "-m", "scan_server.emulation.cli", "replay", str(canonical), "--server",
                           "http://127.0.0.1:9", "--out", str(tmp_path / "o"), "--timeout", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: unavailable")
    assert "Traceback" not in done.stderr
