"""``make demo``: the closed loop on two simulated recordings the model never saw.

Simulates two recordings in the paper's geometry (seeds far from the training and
evaluation seeds): a homogeneous MoS2 film and an MoS2 island with vacuum around it (where
the value map can save dose; on the film it must do no harm). Starts ``scan-server serve``
with the shipped model in the background, replays both recordings through it with every
strategy it serves (the default value map, the GRU policy, Halton, random, sparse raster;
250 positions in 5 steps of 50), scores the visited patterns as ``scan-server evaluate``
does, prints the table and writes the figures, then stops the server.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
from scan_client.client import ScanClient

from ..device import choose_device
from ..evaluation import DEFAULT_FINAL_ITERATIONS
from ..io.canonical import read_recording
from ..physics.simulate import preset, simulate_recording
from ..policy import DEFAULT_MODEL
from .local_server import LocalServer
from .recorded import replay

#: the counts of the demo's dose–quality curves (the dose ratios take Halton's at 250 as the target)
DEMO_POSITIONS = (100, 150, 200, 250, 300)
#: (specimen family, seed) of the demo's recordings
DEMO_RECORDINGS = (("film", 20261124), ("island", 20261125))


def run_demo(out: Path, positions: int | list[int] = list(DEMO_POSITIONS), final_iterations: int = DEFAULT_FINAL_ITERATIONS,
             model: str = DEFAULT_MODEL, models_dir: Path = Path("models")) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for family, seed in DEMO_RECORDINGS:
        path = out / "recordings" / f"{family}_{seed}.h5"
        if not path.exists():
            started = time.perf_counter()
            simulate_recording(preset("paper", family=family), seed, path)
            print(f"simulated {path} (10,000 patterns) in {time.perf_counter() - started:.1f} s")
        paths.append(path)
    acquisitions = [read_recording(p) for p in paths]
    server = LocalServer(out / "sessions", out / "server.log", model=model, models_dir=str(models_dir.resolve()),
                         decision_deadline_ms="0")
    with server:
        health = httpx.get(f"{server.url}/health").json()
        strategies = health["strategies"]
        print(f"server {server.url}: model {health['model'] or 'none'} on {health['device']}"
              + ("" if health["model_loaded"] else f" ({health['model_error']}; baselines only)"))
        with ScanClient(server.url, server.token, timeout_s=120) as client:
            print(f"the sessions of this demo, in a browser: {client.live_view_url()}", flush=True)
            report = replay(client, acquisitions, [p.stem for p in paths], strategies, positions, final_iterations,
                            out / "report", seed=0, device=choose_device("auto"),
                            on_open=lambda session: print(f"\nlive view of session {session.id} ({session.strategy}): "
                                                          f"{session.live_view_url()}", flush=True))
    print()
    print((out / "report" / "report.md").read_text())
    for warning in report["warnings"]:
        print(f"warning (server): {warning}")
    first = out / "report" / "figures" / f"{paths[0].stem}.png"
    shutil.copyfile(first, out / "demo.png")
    print(f"figures: {out / 'report' / 'figures'}; summary figure {out / 'demo.png'}; server stopped")
    return report
