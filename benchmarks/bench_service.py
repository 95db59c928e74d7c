"""Per-step decision latency of the running service, one session and four at once.

Starts ``scan-server serve`` (a subprocess on loopback, free ports) with the shipped model
of the chosen preset (the default ``models/mos2-cpu-v2`` for ``cpu``; a randomly initialised
model of the same size, with a value map, when none is installed: the latency does not depend
on the weights), simulates one paper-geometry recording (100 × 100 positions, 64-px
detector) into a temporary folder, and plays sessions of each ``--strategies`` (default: the
value map, then the GRU policy) of 250 positions (5 sub-sequences of 50) against it over
ZeroMQ, the client acting as the microscope. Latency = batch sent → positions received, for
the 4 steps that decide (the 5th reply only says done). Prints p50/p95 for one session at
a time (``--sessions`` of them) and for four concurrent sessions, against the targets
(cpu: p95 ≤ 150 ms on 2 cores; paper on a GPU: p95 ≤ 15 ms; four at once: p95 ≤ 2× one).
Run with ``make bench-service`` (``--preset paper --device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from scan_client import ScanClient, run_scan
from scan_server.emulation.local_server import LocalServer
from scan_server.emulation.recorded import RecordedMicroscope, spec_for

from scan_server.io.canonical import read_recording
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.policy import DEFAULT_MODEL
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.policy.model_folder import ModelFolder
from scan_server.policy.value_map import ValueMapSettings

TARGET_P95_MS = {"cpu": 150.0, "paper": 15.0}


def model_folder(models: Path, preset_name: str, work: Path) -> tuple[Path, str]:
    shipped = models / (DEFAULT_MODEL if preset_name == "cpu" else f"mos2-{preset_name}-v2")
    if shipped.is_dir():
        return shipped, f"shipped {shipped}"
    torch.manual_seed(0)
    settings = ModelSettings.from_preset(preset_name)
    model = AdaptiveModel(ModelSettings(settings.preset, settings.encoder, settings.policy, ValueMapSettings()))
    folder = work / "models" / f"random-{preset_name}"
    ModelFolder(folder).save(model, {"name": folder.name, "settings": model.settings.as_dict()})
    return folder, f"randomly initialised {preset_name} model (no {shipped} installed)"


def play(url: str, token: str, acquisition, spec: dict, latencies: list[float]) -> None:
    """One session through the client library; the client is the microscope (a virtual one
    over the recording). Latency = batch sent → positions received, deciding steps only."""
    with ScanClient(url, token, timeout_s=120) as client:
        result = run_scan(RecordedMicroscope(acquisition), client, spec)
    if result.fallbacks:
        raise RuntimeError("a fallback reply: the deadline is on")
    latencies.extend(result.latencies_ms)


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def measure(url: str, token: str, acquisition, strategy: str, sessions: int, target_ms: float) -> None:
    """``sessions`` sessions one after the other, then four at once; prints both lines."""
    spec = spec_for(acquisition, strategy, positions=250, subsequence=50, seed=0)
    play(url, token, acquisition, spec, [])      # warm-up
    single: list[float] = []
    for _ in range(sessions):
        play(url, token, acquisition, spec, single)
    concurrent: list[float] = []
    threads = [threading.Thread(target=play, args=(url, token, acquisition, spec, concurrent)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p50, p95 = percentiles(single)
    c50, c95 = percentiles(concurrent)
    print(f"{strategy}, one session at a time : {len(single)} steps, p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"(target p95 ≤ {target_ms:.0f} ms: {'met' if p95 <= target_ms else 'MISSED'})")
    print(f"{strategy}, four sessions at once : {len(concurrent)} steps, p50 {c50:.1f} ms, p95 {c95:.1f} ms "
          f"= {c95 / p95:.2f}× one session (target ≤ 2×: {'met' if c95 <= 2 * p95 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=("cpu", "paper"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sessions", type=int, default=8, help="sessions played one after the other")
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--strategies", nargs="+", default=["value-map", "adaptive"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    server = None
    try:
        folder, which = model_folder(args.models, args.preset, work)
        simulate_recording(preset("paper"), 20261124, work / "rec.h5", progress=False)
        acquisition = read_recording(work / "rec.h5")
        server = LocalServer(work / "sessions", work / "server.log", models_dir=str(folder.parent),
                             model=folder.name, device=args.device, decision_deadline_ms="0",
                             compute_workers="4").start()
        url, token = server.url, server.token
        print(f"model: {which}; device {args.device}; torch threads {torch.get_num_threads()} "
              f"(this process; {os.cpu_count()} cores)")
        for strategy in args.strategies:
            measure(url, token, acquisition, strategy, args.sessions, TARGET_P95_MS[args.preset])
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
