"""ROP against py4DSTEM 0.14.18 SingleslicePtychography: same recording, same 250
positions, same number of gradient-descent iterations, known probe. Prints both times,
their ratio and both SSIMs against the true phase, in one run.

Run with ``make bench-rop`` (creates .venv-bench with py4DSTEM). Options: --help.
The recording is simulated with a focused probe (C10 = 0), so that no defocus sign
convention can favour either code. py4DSTEM runs plain full-batch gradient descent
(every regulariser and filter off, probe fixed) at several step sizes; its best SSIM
is reported, so the comparison does not hinge on our choice of its step.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from scan_server.contracts import Acquisition, ObjectGrid
from scan_server.device import choose_device
from scan_server.evaluation.metrics import resample_to_grid, ssim_phase
from scan_server.io.canonical import read_recording
from scan_server.physics.reconstruct import RopSettings, prepare_batch, reconstruct, reconstruct_acquisition
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.scanning.acquire import select_positions


def ensure_recording(folder: Path, seed: int) -> Path:
    path = folder / f"bench_focused_{seed:06d}.h5"
    if not path.exists():
        simulate_recording(preset("paper", c10_range_angstrom=(0.0, 0.0)), seed, path, progress=False)
    return path


def time_ours(acquisition: Acquisition, indices: np.ndarray, iterations: int, repeats: int,
              device: torch.device) -> tuple[float, np.ndarray, ObjectGrid]:
    settings = RopSettings(iterations=iterations)
    reconstruct_acquisition(acquisition, indices, RopSettings(iterations=1), device=device)  # warm-up
    best, result = float("inf"), None
    for _ in range(repeats):
        result = reconstruct_acquisition(acquisition, indices, settings, device=device)
        best = min(best, result.seconds)
    return best, result.potential.real, result.grid


def run_py4dstem(acquisition: Acquisition, indices: np.ndarray, iterations: int, step_size: float
                 ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(preprocess s, reconstruct s, object potential, positions in object px)."""
    import py4DSTEM

    ny, nx = acquisition.scan.shape
    frames = np.asarray(acquisition.frames[:], dtype=np.float32).reshape(ny, nx, *acquisition.frames.shape[1:])
    datacube = py4DSTEM.DataCube(data=frames)
    datacube.calibration.set_R_pixel_size(acquisition.scan.step_angstrom)
    datacube.calibration.set_R_pixel_units("A")
    datacube.calibration.set_Q_pixel_size(acquisition.detector_sampling_inv_angstrom)
    datacube.calibration.set_Q_pixel_units("A^-1")
    mask = np.zeros(ny * nx, dtype=bool)
    mask[indices] = True
    started = time.perf_counter()
    ptycho = py4DSTEM.process.phase.SingleslicePtychography(
        datacube=datacube, energy=acquisition.optics.energy_ev, semiangle_cutoff=acquisition.optics.semiangle_mrad,
        C10=acquisition.optics.c10_angstrom, object_type="potential", positions_mask=mask.reshape(ny, nx),
        device="cpu", verbose=False)
    ptycho.preprocess(plot_center_of_mass=False, plot_rotation=False, plot_probe_overlaps=False,
                      force_com_rotation=0.0, force_com_transpose=False, fit_function="constant")
    preprocess_s = time.perf_counter() - started
    started = time.perf_counter()
    ptycho.reconstruct(num_iter=iterations, reconstruction_method="gradient-descent", step_size=step_size,
                       max_batch_size=None, fix_probe=True, fix_positions=True, gaussian_filter=False,
                       butterworth_filter=False, tv_denoise=False, object_positivity=False,
                       fix_potential_baseline=False, reset=True, progress_bar=False)
    reconstruct_s = time.perf_counter() - started
    return preprocess_s, reconstruct_s, np.asarray(ptycho.object), np.asarray(ptycho._positions_px)


def py4dstem_on_our_grid(obj: np.ndarray, positions_px: np.ndarray, positions_angstrom: np.ndarray,
                         grid: ObjectGrid) -> np.ndarray:
    """Map py4DSTEM's object (same pixel size, axes (Rx, Ry) = our (y, x)) onto our grid
    by the offset between its pixel positions and ours."""
    ours_px = (positions_angstrom - np.asarray(grid.origin_angstrom)) / grid.pixel_size_angstrom
    offset = (positions_px - ours_px).mean(axis=0)
    yy, xx = np.meshgrid(np.arange(grid.shape_px[0]), np.arange(grid.shape_px[1]), indexing="ij")
    return ndimage.map_coordinates(obj, [yy + offset[0], xx + offset[1]], order=1, mode="constant")


def batch_throughput(acquisition: Acquisition, n_positions: int, iterations: int, batch: int,
                     device: torch.device) -> float:
    """Reconstructions per second for ``batch`` data sets of ``n_positions`` (RL training's load)."""
    from scan_server.physics.reconstruct import reconstruction_geometry

    geometry = reconstruction_geometry(acquisition)
    grid = ObjectGrid.covering(acquisition.positions_angstrom, geometry)
    choices = [np.sort(select_positions("halton", n_positions, acquisition.positions_angstrom, seed))
               for seed in range(batch)]
    frames = [np.asarray(acquisition.frames[c]) for c in choices]
    positions = [acquisition.positions_angstrom[c] for c in choices]
    data = prepare_batch(frames, positions, [acquisition.optics] * batch, grid, geometry, device)
    reconstruct(data, RopSettings(iterations=1))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    reconstruct(data, RopSettings(iterations=iterations))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--positions", type=int, default=250)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--py4dstem-steps", default="0.5,1,2,4,8,16,32")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = choose_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    acquisition = read_recording(ensure_recording(args.out, args.seed))
    indices = np.sort(select_positions("halton", args.positions, acquisition.positions_angstrom, args.seed))
    print(f"recording: {acquisition.count} patterns, {args.positions} Halton positions, {args.iterations} iterations,"
          f" torch threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}, device {device}")

    ours_s, ours_phase, grid = time_ours(acquisition, indices, args.iterations, args.repeats, device)
    region = grid.scan_region(acquisition.positions_angstrom)
    truth = resample_to_grid(acquisition.ground_truth, grid)
    ours_ssim = ssim_phase(ours_phase, truth, region)

    rows = []
    for step in (float(s) for s in args.py4dstem_steps.split(",")):
        pre_s, rec_s, obj, positions_px = run_py4dstem(acquisition, indices, args.iterations, step)
        theirs = py4dstem_on_our_grid(obj, positions_px, acquisition.positions_angstrom[indices], grid)
        rows.append((step, pre_s, rec_s, ssim_phase(theirs, truth, region)))
        print(f"  py4DSTEM step {step:<5}: preprocess {pre_s:6.2f} s, reconstruct {rec_s:6.2f} s, "
              f"SSIM {rows[-1][3]:.3f}")
    step, pre_s, rec_s, theirs_ssim = max(rows, key=lambda r: r[3])

    print()
    print(f"{'':<28}{'time (s)':>10}{'SSIM vs truth':>16}")
    print(f"{'ours (ROP, torch)':<28}{ours_s:>10.3f}{ours_ssim:>16.3f}")
    print(f"{f'py4DSTEM (step {step})':<28}{rec_s:>10.3f}{theirs_ssim:>16.3f}   (+{pre_s:.2f} s preprocess)")
    ratio = rec_s / ours_s
    print(f"speed-up: {ratio:.1f}× on reconstruction alone, {(rec_s + pre_s) / ours_s:.1f}× with py4DSTEM's "
          f"preprocessing; target ≥ 5× at equal or better SSIM: "
          f"{'met' if ratio >= 5 and ours_ssim >= theirs_ssim else 'NOT met'}")
    throughput = batch_throughput(acquisition, args.positions, args.iterations, args.batch, device)
    print(f"batch of {args.batch} data sets × {args.positions} positions, {args.iterations} iterations on {device}: "
          f"{throughput:.1f} reconstructions/s")


if __name__ == "__main__":
    main()
