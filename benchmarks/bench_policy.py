"""Policy speed: RL iterations per second and one policy step's time.

Simulates two paper-geometry recordings into a temporary folder (or uses --data), then
(1) times REINFORCE iterations of the ``cpu`` preset at batch 8 (the ``paper`` preset at
batch 24 with --preset paper --batch 24, on a GPU), (2) times one policy step for a
single session at 100, 150 and 250 positions (its patterns in memory, as in the server),
the reconstruction made from scratch (all patterns so far, 5 ROP iterations: training's and
the previous release's path) and
warm-started (the server's: the previous step's estimate, 2 passes over the 50 new patterns,
1 over all), then encode + GRU, and (3) one ROP pass over 250 patterns with the written-out
gradient against torch's autograd through the forward model (the previous release's).
Run with ``make bench-policy``.
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
from scan_server.physics.forward import accumulate_windows, window_flat_index
from scan_server.physics.incremental import IncrementalReconstruction, advance
from scan_server.physics.reconstruct import (
    ChunkCache,
    RopSettings,
    _chunk_loss_and_gradient_autograd,
    loss_and_gradient,
    prepare_batch,
    reconstruct_sets,
)
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.rollout import EpisodeBatch
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


def policy_step_seconds(data: TrainingData, model_preset: str, positions: int, warm: bool,
                        repeats: int = 3) -> float:
    """The fastest of ``repeats`` policy steps at ``positions`` (s), reconstruction included."""
    model = AdaptiveModel(ModelSettings.from_preset(model_preset)).to(data.device)
    batch = EpisodeBatch.over(data.acquisitions[:1], data.device)
    acquisition = batch.acquisitions[0]
    indices = select_positions("halton", positions, acquisition.positions_angstrom)
    frames = np.asarray(acquisition.frames[np.sort(indices)])[np.argsort(np.argsort(indices))]
    last = torch.rand(1, 1, model.settings.policy.subsequence, 2, device=data.device)
    best = float("inf")
    for _ in range(repeats + 1):
        state = IncrementalReconstruction(acquisition.optics, batch.grid, batch.geometry, data.device)
        for stop in range(50, positions + 1, 50):      # the session so far, the last 50 not yet reconstructed
            state.add(frames[stop - 50:stop], acquisition.positions_angstrom[indices[stop - 50:stop]])
            if stop < positions:
                advance([state])
        started = time.perf_counter()
        with torch.no_grad():
            potential = advance([state])[0][None] if warm else reconstruct_sets(
                [frames], [acquisition.positions_angstrom[indices]], [acquisition.optics], batch.grid, batch.geometry,
                5, data.device)
            latent = model.encode(potential, batch.region)
            model(last, latent[:, None])
        if data.device.type == "cuda":
            torch.cuda.synchronize(data.device)
        best = min(best, time.perf_counter() - started)
    return best


def gradient_pass_ms(data: TrainingData, positions: int = 250, repeats: int = 5) -> tuple[float, float]:
    """One ROP pass (loss and gradient) over ``positions`` patterns: written out, then autograd (ms)."""
    batch = EpisodeBatch.over(data.acquisitions[:1], data.device)
    acquisition = batch.acquisitions[0]
    indices = np.sort(select_positions("halton", positions, acquisition.positions_angstrom))
    rop = prepare_batch([np.asarray(acquisition.frames[indices])], [acquisition.positions_angstrom[indices]],
                        [acquisition.optics], batch.grid, batch.geometry, data.device)
    cache = ChunkCache(rop, RopSettings())
    potential = torch.zeros((1, *batch.grid.shape_px), dtype=torch.complex64, device=data.device)
    transmission = torch.exp(1j * potential).reshape(-1)

    def written_out() -> None:
        loss_and_gradient(potential, rop, cache)

    def autograd() -> None:
        for start in range(0, positions, cache.chunk):
            plan = rop.plan.chunk(start, start + cache.chunk)
            index = window_flat_index(plan, rop.object_shape, rop.geometry.window_px)
            _, gradient = _chunk_loss_and_gradient_autograd(cache.get(start), transmission[index],
                                                            rop.patterns[start:start + cache.chunk], rop.geometry)
            accumulate_windows(torch.zeros_like(transmission), index, gradient)

    result = []
    for function in (written_out, autograd):
        function()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            if data.device.type == "cuda":
                torch.cuda.synchronize(data.device)
            times.append(time.perf_counter() - started)
        result.append(1e3 * min(times))
    return result[0], result[1]


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
        for positions in (100, 150, 250):
            scratch = policy_step_seconds(data, args.preset, positions, warm=False)
            warm = policy_step_seconds(data, args.preset, positions, warm=True)
            print(f"one policy step at {positions} positions, {args.preset} preset, single session: reconstruction "
                  f"from scratch (5 it) + encode + GRU {1000 * scratch:.0f} ms; warm-started (2 local + 1 global) "
                  f"+ encode + GRU {1000 * warm:.0f} ms ({scratch / warm:.1f}× faster)")
        written, autograd = gradient_pass_ms(data)
        print(f"one ROP pass over 250 patterns: written-out gradient {written:.1f} ms, autograd through the "
              f"forward model {autograd:.1f} ms ({autograd / written:.1f}×)")
    finally:
        if args.data is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
