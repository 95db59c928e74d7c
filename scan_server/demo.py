"""``make demo`` for now: simulate one recording, reconstruct it from all positions and
from N random / Halton positions, write a figure, print SSIM and resolution.
(The closed adaptive loop replaces the middle step once the policy and server exist.)"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .device import choose_device
from .evaluation.baselines import select_positions
from .evaluation.figures import Panel, save_comparison
from .evaluation.metrics import resample_to_grid, resolution_angstrom, ssim_phase
from .io.canonical import read_recording
from .physics.reconstruct import GROUND_TRUTH_ITERATIONS, RopSettings, reconstruct_acquisition
from .physics.simulate import preset, simulate_recording


def run_demo(out: Path, seed: int, n_positions: int, device_name: str = "auto") -> None:
    device = choose_device(device_name)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"paper_{seed:06d}.h5"
    if not path.exists():
        started = time.perf_counter()
        simulate_recording(preset("paper"), seed, path, device=device)
        print(f"simulated {path} (10,000 patterns) in {time.perf_counter() - started:.1f} s")
    acquisition = read_recording(path)
    rows, panels = [], []

    full = reconstruct_acquisition(acquisition, np.arange(acquisition.count),
                                   RopSettings(iterations=GROUND_TRUTH_ITERATIONS), device=device, progress=True)
    grid = full.grid
    region = grid.scan_region(acquisition.positions_angstrom)
    truth = resample_to_grid(acquisition.ground_truth, grid)
    panels.append(Panel("true phase (band-limited)", truth, grid, region, None,
                        resolution_angstrom(truth[region], grid.pixel_size_angstrom)))

    def score(name: str, phase: np.ndarray, positions: np.ndarray | None, seconds: float, iterations: int) -> None:
        resolution = resolution_angstrom(phase[region], grid.pixel_size_angstrom)
        rows.append((name, iterations, seconds, ssim_phase(phase, full.potential.real, region),
                     ssim_phase(phase, truth, region), resolution))
        panels.append(Panel(name, phase, grid, region, positions, resolution))

    score(f"all {acquisition.count} positions", full.potential.real, None, full.seconds, full.iterations)
    for strategy in ("random", "halton"):
        indices = select_positions(strategy, n_positions, acquisition.positions_angstrom, seed)
        result = reconstruct_acquisition(acquisition, indices, RopSettings(), device=device)
        score(f"{n_positions} {strategy}", result.potential.real, result.positions_angstrom,
              result.seconds, result.iterations)

    figure = save_comparison(out / "demo.png", panels,
                             f"MoS2, 60 kV, 33 mrad, {acquisition.electrons_per_pattern:.2g} e⁻/pattern "
                             f"(dose of {n_positions} positions: "
                             f"{acquisition.dose_e_per_angstrom2(n_positions):.3g} e⁻/Å²)")
    print()
    print(f"{'scan':<24}{'iter.':>6}{'time (s)':>10}{'SSIM vs full':>14}{'SSIM vs true':>14}{'resolution':>12}")
    for name, iterations, seconds, ssim_full, ssim_true, resolution in rows:
        res = f"{resolution:.2f} Å" if resolution else "none"
        print(f"{name:<24}{iterations:>6}{seconds:>10.2f}{ssim_full:>14.3f}{ssim_true:>14.3f}{res:>12}")
    print(f"\nfigure: {figure}")
