"""The GPU check: everything that needs CUDA, in one run of a few minutes, one table at the end.

1. the ``gpu`` tests (CUDA results equal the CPU's, deterministic);
2. ROP on CUDA against the CPU on the same paper-geometry recording (100 × 100 positions,
   64-px detector): from scratch at 250 positions (5 iterations), a warm-started step
   (200 → 250 positions), four sessions' warm steps batched in one call against one by one,
   and the whole recording (10,000 positions, 5 iterations); the largest difference CUDA − CPU;
3. one policy step of the ``paper`` preset (a randomly initialised model: the time does not
   depend on the weights) on CUDA: the warm-started reconstruction, the encoder and the GRU;
4. the service benchmark (``bench_service.py``) with the ``paper`` preset on CUDA: one session
   and four at once, now against the previous release's path.

Without CUDA it says so and exits 0 (nothing to check). Run with ``make gpu-check``; put the
table in the README ("Real time").
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_service  # noqa: E402

from scan_server.contracts import ObjectGrid  # noqa: E402
from scan_server.io.canonical import read_recording  # noqa: E402
from scan_server.physics.incremental import IncrementalReconstruction, advance  # noqa: E402
from scan_server.physics.reconstruct import reconstruct_sets, reconstruction_geometry  # noqa: E402
from scan_server.physics.simulate import preset, simulate_recording  # noqa: E402
from scan_server.policy.model import AdaptiveModel, ModelSettings  # noqa: E402
from scan_server.policy.step import encode_and_decide  # noqa: E402
from scan_server.scanning.baselines import halton_unit  # noqa: E402
from scan_server.scanning.virtual_microscope import VirtualMicroscope  # noqa: E402

GPU_TESTS = ["tests/physics/test_reconstruct.py", "tests/physics/test_incremental.py"]
Row = tuple[str, str, str, str]


def timed(function: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    """Median wall time (ms) of ``function`` after one warm-up, synchronising CUDA."""
    times = []
    for k in range(repeats + 1):
        started = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if k:
            times.append(1e3 * (time.perf_counter() - started))
    return statistics.median(times)


def once(function: Callable[[], object], device: torch.device) -> float:
    """Wall time (ms) of one call of ``function`` (for work that a repeat would not redo)."""
    started = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1e3 * (time.perf_counter() - started)


def gpu_tests() -> Row:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                             *GPU_TESTS], capture_output=True, text=True)
    last = (result.stdout.strip().splitlines() or ["no output"])[-1]
    print(result.stdout[-2000:], result.stderr[-2000:], sep="\n")
    return ("gpu tests", last, "", "passed" if result.returncode == 0 else "FAILED")


class Recording:
    """The recording, its grid, and the first 250 Halton positions' patterns."""

    def __init__(self, path: Path) -> None:
        self.acquisition = read_recording(path)
        self.geometry = reconstruction_geometry(self.acquisition)
        self.grid = ObjectGrid.covering(self.acquisition.positions_angstrom, self.geometry)
        microscope = VirtualMicroscope.over(self.acquisition)
        self.region = microscope.field.region(self.grid)
        indices = microscope.nearest_unused(microscope.to_angstrom(halton_unit(250, 0)))
        self.frames = np.stack([np.asarray(self.acquisition.frames[i]) for i in indices]).astype(np.float32)
        self.positions = self.acquisition.positions_angstrom[indices]

    def scratch(self, count: int, device: torch.device) -> torch.Tensor:
        return reconstruct_sets([self.frames[:count]], [self.positions[:count]], [self.acquisition.optics],
                                self.grid, self.geometry, 5, device)[0]

    def warm_at(self, count: int, device: torch.device) -> IncrementalReconstruction:
        """A session stepped to ``count − 50`` positions with the last 50 added (the next step due)."""
        state = IncrementalReconstruction(self.acquisition.optics, self.grid, self.geometry, device)
        for stop in range(50, count, 50):
            state.add(self.frames[stop - 50:stop], self.positions[stop - 50:stop])
            advance([state])
        state.add(self.frames[count - 50:count], self.positions[count - 50:count])
        return state


def warm_step(recording: Recording, device: torch.device, sessions: int = 1) -> float:
    """Median time (ms) of the 200 → 250 warm step of ``sessions`` sessions in one call (5 tries)."""
    times = []
    for _ in range(5):
        states = [recording.warm_at(250, device) for _ in range(sessions)]
        times.append(once(lambda: advance(states), device))
    return statistics.median(times)


def rop_rows(recording: Recording, cuda: torch.device) -> list[Row]:
    cpu = torch.device("cpu")
    rows: list[Row] = []
    difference = float((recording.scratch(250, cuda).cpu() - recording.scratch(250, cpu)).abs().max())
    a, b = timed(lambda: recording.scratch(250, cpu), cpu), timed(lambda: recording.scratch(250, cuda), cuda)
    rows.append(("ROP from scratch, 250 positions × 5 it", f"{a:.1f} ms", f"{b:.2f} ms",
                 f"{a / b:.0f}× (max |Δ| {difference:.1e} rad)"))
    a, b = warm_step(recording, cpu), warm_step(recording, cuda)
    rows.append(("ROP warm step 200 → 250 (2 local + 1 global)", f"{a:.1f} ms", f"{b:.2f} ms", f"{a / b:.0f}×"))
    one, four = warm_step(recording, cuda), warm_step(recording, cuda, sessions=4)
    rows.append(("4 sessions' warm steps: one call vs 4 × one", f"{4 * one:.2f} ms (CUDA, 4 × one)",
                 f"{four:.2f} ms", f"{4 * one / four:.1f}×"))
    every = recording.acquisition.count
    full = [np.asarray(recording.acquisition.frames[:])]
    run = lambda device: reconstruct_sets(full, [recording.acquisition.positions_angstrom],  # noqa: E731
                                          [recording.acquisition.optics], recording.grid, recording.geometry, 5,
                                          device)
    a, b = timed(lambda: run(cpu), cpu, repeats=1), timed(lambda: run(cuda), cuda, repeats=3)
    rows.append((f"ROP whole recording, {every} positions × 5 it", f"{a:.0f} ms", f"{b:.1f} ms", f"{a / b:.0f}×"))
    return rows


def policy_row(recording: Recording, cuda: torch.device) -> Row:
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("paper")).to(cuda).eval()
    last = torch.rand(1, 50, 2, device=cuda)

    def step() -> None:
        with torch.no_grad():
            potential = advance([state])[0]
            encode_and_decide(model, potential[None], recording.region, last, None)

    times = []
    for _ in range(5):
        state = recording.warm_at(250, cuda)
        times.append(once(step, cuda))
    encode_only = timed(lambda: encode_and_decide(model, recording.scratch(250, cuda)[None], recording.region,
                                                  last, None), cuda)
    return ("policy step, paper preset (warm ROP + encoder + GRU)", "", f"{statistics.median(times):.2f} ms",
            f"(scratch ROP + encoder + GRU: {encode_only:.2f} ms)")


def service_rows(work: Path, recording: Recording, sessions: int) -> list[Row]:
    folder, which = bench_service.model_folder(Path("models"), "paper", work)
    print(f"service benchmark: {which}")
    results = {path: bench_service.serve_and_measure(work, folder, "cuda", path, recording.acquisition,
                                                     ["adaptive", "value-map"], sessions)
               for path in bench_service.PATHS}
    bench_service.report(results, ["adaptive", "value-map"], bench_service.TARGET_P95_MS["paper"])
    rows = []
    for strategy in ("adaptive", "value-map"):
        now, previous = results["now"][strategy], results["previous"][strategy]
        a50, a95, c50, c95 = now.row()
        p95 = previous.row()[1]
        rows.append((f"service, paper preset, {strategy}: one session p50 / p95", "",
                     f"{a50:.1f} / {a95:.1f} ms", f"previous path p95 {p95:.1f} ms "
                     f"(target p95 ≤ {bench_service.TARGET_P95_MS['paper']:.0f} ms: "
                     f"{'met' if a95 <= bench_service.TARGET_P95_MS['paper'] else 'MISSED'})"))
        rows.append((f"service, paper preset, {strategy}: four at once p50 / p95", "", f"{c50:.1f} / {c95:.1f} ms",
                     f"{now.concurrent_fallbacks} fallbacks; {c95 / a95:.2f}× one session"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=4, help="service benchmark: sessions one at a time")
    parser.add_argument("--skip-service", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu-check: skipped — torch sees no CUDA device on this machine (torch.cuda.is_available() is "
              f"False; torch {torch.__version__}). Run it where a GPU and a CUDA build of torch are installed.")
        return
    cuda = torch.device("cuda")
    card = torch.cuda.get_device_name(cuda)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        rows = [gpu_tests()]
        started = time.perf_counter()
        simulate_recording(preset("paper"), 20261124, work / "rec.h5", device=cuda, progress=False)
        recording = Recording(work / "rec.h5")
        print(f"simulated the recording on {card} in {time.perf_counter() - started:.1f} s", flush=True)
        rows += rop_rows(recording, cuda)
        rows.append(policy_row(recording, cuda))
        if not args.skip_service:
            rows += service_rows(work, recording, args.sessions)
        print(f"\n## gpu-check on {card} (torch {torch.__version__}, CUDA {torch.version.cuda})\n")
        print("| check | CPU | CUDA | comparison |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
