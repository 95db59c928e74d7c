"""Policy speed: RL iterations per second and one policy step's time.

Simulates two paper-geometry recordings into a temporary folder (or uses --data), then
(1) times REINFORCE iterations of the ``cpu`` preset at batch 8 (the ``paper`` preset at
batch 24 with --preset paper --batch 24, on a GPU), and (2) times one policy step for a
single session (reconstruct all patterns so far with 5 ROP iterations + encode + GRU)
at 50, 150 and 250 positions. Run with ``make bench-policy``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scan_server.device import choose_device
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.rollout import EpisodeBatch, reconstruct_batch
from scan_server.scanning.acquire import select_positions
from scan_server.training.data import TrainingData
from scan_server.training.reinforce import make_step
from scan_server.training.run import StageState
from scan_server.training.settings import TrainSettings


def rl_iterations_per_second(data: TrainingData, model_preset: str, batch: int, iterations: int) -> float:
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset(model_preset)).to(data.device)
    model.autoencoder.requires_grad_(False)
    optimizer = torch.optim.Adam(model.policy.parameters(), lr=1e-5)
    settings = TrainSettings(preset=model_preset, batch=batch, iterations=iterations)
    step = make_step(model, model, optimizer, data, settings)
    state = StageState(0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    step(state)  # warm-up
    started = time.perf_counter()
    for _ in range(iterations):
        step(state)
    if data.device.type == "cuda":
        torch.cuda.synchronize(data.device)
    return iterations / (time.perf_counter() - started)


def policy_step_seconds(data: TrainingData, model_preset: str, positions: int, repeats: int = 3) -> float:
    model = AdaptiveModel(ModelSettings.from_preset(model_preset)).to(data.device)
    batch = EpisodeBatch.over(data.acquisitions[:1], data.device)
    indices = select_positions("halton", positions, batch.acquisitions[0].positions_angstrom)
    last = torch.rand(1, 1, model.settings.policy.subsequence, 2, device=data.device)
    best = float("inf")
    for _ in range(repeats + 1):
        started = time.perf_counter()
        with torch.no_grad():
            potential = reconstruct_batch(batch, [indices], 5, data.device)
            latent = model.encode(potential, batch.region)
            model(last, latent[:, None])
        if data.device.type == "cuda":
            torch.cuda.synchronize(data.device)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder of recordings (default: simulate two)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = choose_device(args.device)
    folder = args.data or Path(tempfile.mkdtemp(prefix="bench_policy_"))
    try:
        if args.data is None:
            for seed in (1, 2):
                simulate_recording(preset("paper"), seed, folder / f"paper_{seed:06d}.h5", device=device,
                                   progress=False)
        data = TrainingData(folder, device=device)
        rate = rl_iterations_per_second(data, args.preset, args.batch, args.iterations)
        print(f"REINFORCE, {args.preset} preset, batch {args.batch}, 5 × 50 positions, on {device}: "
              f"{rate:.3f} iterations/s ({1 / rate:.1f} s per iteration)")
        for positions in (50, 150, 250):
            seconds = policy_step_seconds(data, args.preset, positions)
            print(f"one policy step (reconstruct {positions} patterns, 5 iterations + encode + GRU), "
                  f"{args.preset} preset, single session: {1000 * seconds:.0f} ms")
    finally:
        if args.data is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
