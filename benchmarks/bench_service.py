"""Per-step decision latency of the running service, one session and four at once, now
against the previous release's path in the same run.

Starts ``scan-server serve`` (a subprocess on loopback, free ports) with the shipped model
of the chosen preset (the default ``models/mos2-cpu-v3`` for ``cpu``; a randomly initialised
model of the same size, with a value map, when none is installed: the latency does not depend
on the weights), simulates one paper-geometry recording (100 × 100 positions, 64-px
detector) into a temporary folder, and plays sessions of each ``--strategies`` (default: the
GRU policy, then the value map) of 250 positions (5 sub-sequences of 50) against it over
ZeroMQ, the client acting as the microscope. Latency = batch sent → positions received, for
the 4 steps that decide (the 5th reply only says done), at the service's 500 ms decision
deadline (a later decision is answered by Halton points: a fallback, counted).

Two server configurations, one after the other on the same machine:
- ``previous``: the previous release's path — every step reconstructs everything acquired
  from zero (``reconstruction = scratch``), each decision in its own thread, 2 decision threads;
- ``now``: the defaults — warm-started reconstructions on one thread, decisions due together
  batched (``reconstruction = warm``, ``batch_window_ms = 5``, 4 decision threads).
Both run today's ROP kernel (its written-out gradient speeds up both paths alike; ``make
bench-rop`` shows that part).

Prints, per strategy and path: ``--sessions`` sessions one at a time (p50, p95), four at once
(p50, p95, fallbacks), and the ratio now ÷ previous; then the targets (cpu, 2 cores:
adaptive p95 ≤ 60 ms alone, four at once 0 fallbacks and p95 ≤ 2× alone; paper preset on a
GPU: p95 ≤ 10 ms). Run with ``make bench-service`` (``--preset paper --device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
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

TARGET_P95_MS = {"cpu": 60.0, "paper": 10.0}
DEADLINE_MS = 500
PATHS = {"previous": dict(reconstruction="scratch", compute_workers="2", batch_window_ms="0"),
         "now": dict(reconstruction="warm", compute_workers="4", batch_window_ms="5")}


@dataclass
class Measured:
    """Latencies (ms) of the deciding steps and the fallbacks, one session at a time and four at once."""

    single: list[float] = field(default_factory=list)
    concurrent: list[float] = field(default_factory=list)
    single_fallbacks: int = 0
    concurrent_fallbacks: int = 0

    def row(self) -> tuple[float, float, float, float]:
        return (*percentiles(self.single), *percentiles(self.concurrent))


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


def play(url: str, token: str, acquisition, spec: dict, latencies: list[float]) -> int:
    """One session through the client library; the client is the microscope (a virtual one
    over the recording). Latency = batch sent → positions received, deciding steps only.
    Returns the number of fallback replies."""
    with ScanClient(url, token, timeout_s=120) as client:
        result = run_scan(RecordedMicroscope(acquisition), client, spec)
    latencies.extend(result.latencies_ms)
    return result.fallbacks


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def measure(url: str, token: str, acquisition, strategy: str, sessions: int) -> Measured:
    """``sessions`` sessions one after the other, then four at once (the caller plays the warm-up)."""
    spec = spec_for(acquisition, strategy, positions=250, subsequence=50, seed=0)
    measured = Measured()
    for _ in range(sessions):
        measured.single_fallbacks += play(url, token, acquisition, spec, measured.single)
    fallbacks: list[int] = []
    threads = [threading.Thread(target=lambda: fallbacks.append(play(url, token, acquisition, spec,
                                                                      measured.concurrent)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    measured.concurrent_fallbacks = sum(fallbacks)
    return measured


def stage_totals(url: str, token: str) -> dict[str, tuple[float, float]]:
    """The server's total seconds and count per stage of a step, from its Prometheus metrics."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    totals: dict[str, list[float]] = {}
    for line in text.splitlines():
        for k, name in enumerate(("scan_server_stage_seconds_sum", "scan_server_stage_seconds_count")):
            if line.startswith(name + "{"):
                stage = line.split('stage="')[1].split('"')[0]
                totals.setdefault(stage, [0.0, 0.0])[k] = float(line.rsplit(" ", 1)[1])
    return {stage: (v[0], v[1]) for stage, v in totals.items()}


def stage_means_ms(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean ms per stage between two ``stage_totals`` (the warm-up session left out)."""
    means = {}
    for stage, (seconds, count) in after.items():
        done = count - before.get(stage, (0.0, 0.0))[1]
        if done:
            means[stage] = 1e3 * (seconds - before.get(stage, (0.0, 0.0))[0]) / done
    return means


def serve_and_measure(work: Path, folder: Path, device: str, path: str, acquisition, strategies: list[str],
                      sessions: int) -> dict[str, Measured]:
    """One server per strategy (so its stage times are the strategy's own), printed as it goes."""
    results = {}
    for strategy in strategies:
        server = LocalServer(work / f"sessions-{path}-{strategy}", work / f"server-{path}.log",
                             models_dir=str(folder.parent), model=folder.name, device=device,
                             decision_deadline_ms=str(DEADLINE_MS), **PATHS[path]).start()
        try:
            spec = spec_for(acquisition, strategy, positions=250, subsequence=50, seed=0)
            play(server.url, server.token, acquisition, spec, [])      # warm-up (first kernels, caches)
            before = stage_totals(server.url, server.token)
            results[strategy] = measure(server.url, server.token, acquisition, strategy, sessions)
            stages = stage_means_ms(before, stage_totals(server.url, server.token))
            print(f"{path}, {strategy}: server's mean per stage after the warm-up " +
                  ", ".join(f"{k} {v:.1f} ms" for k, v in stages.items()), flush=True)
        finally:
            server.stop()
    return results


def report(results: dict[str, dict[str, Measured]], strategies: list[str], target_ms: float) -> None:
    print("\n| strategy | path | one session p50 / p95 ms | four at once p50 / p95 ms | fallbacks (one / four) |")
    print("| --- | --- | --- | --- | --- |")
    for strategy in strategies:
        rows = {path: results[path][strategy] for path in PATHS}
        for path, m in rows.items():
            a50, a95, c50, c95 = m.row()
            print(f"| {strategy} | {path} | {a50:.1f} / {a95:.1f} | {c50:.1f} / {c95:.1f} | "
                  f"{m.single_fallbacks} / {m.concurrent_fallbacks} |")
        ratio = [n / p for n, p in zip(rows["now"].row(), rows["previous"].row())]
        print(f"| {strategy} | now ÷ previous | {ratio[0]:.2f} / {ratio[1]:.2f} | {ratio[2]:.2f} / {ratio[3]:.2f} | |")
    print()
    for strategy in strategies:
        m = results["now"][strategy]
        a50, a95, c50, c95 = m.row()
        print(f"{strategy} (now): one session p95 {a95:.1f} ms (target ≤ {target_ms:.0f} ms: "
              f"{'met' if a95 <= target_ms else 'MISSED'}); four at once {m.concurrent_fallbacks} fallbacks "
              f"(target 0: {'met' if m.concurrent_fallbacks == 0 else 'MISSED'}), p95 {c95:.1f} ms = "
              f"{c95 / a95:.2f}× one session (target ≤ 2×: {'met' if c95 <= 2 * a95 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=("cpu", "paper"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sessions", type=int, default=8, help="sessions played one after the other")
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--strategies", nargs="+", default=["adaptive", "value-map"])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    try:
        folder, which = model_folder(args.models, args.preset, work)
        simulate_recording(preset("paper"), 20261124, work / "rec.h5", progress=False)
        acquisition = read_recording(work / "rec.h5")
        print(f"model: {which}; device {args.device}; {os.cpu_count()} cores; deadline {DEADLINE_MS} ms")
        results = {path: serve_and_measure(work, folder, args.device, path, acquisition, args.strategies,
                                           args.sessions) for path in args.paths}
        if len(results) == len(PATHS):
            report(results, args.strategies, TARGET_P95_MS[args.preset])
        else:
            for path, by_strategy in results.items():
                for strategy, m in by_strategy.items():
                    print(f"{strategy} {path}: " + " / ".join(f"{v:.1f}" for v in m.row()) +
                          f" ms; fallbacks {m.single_fallbacks} / {m.concurrent_fallbacks}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
