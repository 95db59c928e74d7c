"""``make demo`` for now: simulate one recording, reconstruct it from all positions and
from N random / Halton / sparse-raster positions (through the same code as
``scan-server evaluate``), write a figure, print SSIM and resolution. (The closed
adaptive loop joins once a trained model ships.)"""

from __future__ import annotations

import time
from pathlib import Path

from .device import choose_device
from .evaluation.evaluate import evaluate_recording
from .evaluation.figures import Panel, save_comparison
from .evaluation.metrics import resample_to_grid, resolution_angstrom, ssim_phase
from .io.canonical import read_recording
from .physics.reconstruct import RopSettings
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
    result = evaluate_recording(acquisition, None, n_positions, subsequences=1,
                                final_iterations=RopSettings.iterations, seed=seed, device=device, progress=True)
    grid, region = result.grid, result.region
    truth = resample_to_grid(acquisition.ground_truth, grid)
    panels = [Panel("true phase (band-limited)", truth, grid, region, None,
                    resolution_angstrom(truth[region], grid.pixel_size_angstrom))]
    print(f"\n{'scan':<24}{'iter.':>6}{'time (s)':>10}{'SSIM vs full':>14}{'SSIM vs true':>14}{'resolution':>12}")
    for strategy, entry in result.strategies.items():
        name = f"all {acquisition.count} positions" if strategy == "full" else f"{n_positions} {strategy}"
        res = f"{entry.resolution_angstrom:.2f} Å" if entry.resolution_angstrom else "none"
        print(f"{name:<24}{entry.iterations:>6}{entry.seconds:>10.2f}{entry.ssim:>14.3f}"
              f"{ssim_phase(entry.phase, truth, region):>14.3f}{res:>12}")
        panels.append(Panel(name, entry.phase, grid, region, None if strategy == "full" else entry.positions_angstrom,
                            entry.resolution_angstrom))
    dose = acquisition.dose_e_per_angstrom2(n_positions)
    figure = save_comparison(out / "demo.png", panels, f"MoS2, 60 kV, 33 mrad, "
                             f"{acquisition.electrons_per_pattern:.2g} e⁻/pattern (dose of {n_positions} positions: "
                             f"{dose:.3g} e⁻/Å²)")
    print(f"\nfigure: {figure}")
