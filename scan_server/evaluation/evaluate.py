"""``scan-server evaluate``: adaptive against random, Halton and sparse raster scans.

For each recording: the ground truth is the converged reconstruction from all positions
(``full``); every strategy visits ``positions`` recorded patterns (the adaptive one in
``subsequences`` steps through the shared rollout); each final reconstruction gets the
same ``final_iterations`` (default: converged; 5 = the paper's protocol); SSIM against
the ground truth and diffractogram resolution are scored. Q_SSIM = (a − b)/b per
recording, averaged, with a paired bootstrap 95 % interval over recordings. Resolution
improvements compare spatial frequencies: Q_res = d_b / d_a − 1 (finer is better).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..contracts import Acquisition, ObjectGrid
from ..errors import ParameterError
from ..physics.reconstruct import GROUND_TRUTH_ITERATIONS, Reconstruction, RopSettings, reconstruct_acquisition
from ..pipeline import EpisodeBatch, rollout
from ..policy.model import AdaptiveModel
from . import ground_truth_cache
from .baselines import select_positions
from .figures import Panel, save_comparison
from .metrics import relative_improvement, resolution_angstrom, ssim_phase

BASELINES = ("random", "halton", "raster")


@dataclass
class StrategyResult:
    """One strategy on one recording: SSIM against the full-data reconstruction, resolution,
    the positions visited (n, 2) Å, the final phase (H, W), its ROP time and iterations."""

    ssim: float
    resolution_angstrom: float | None
    positions_angstrom: np.ndarray
    phase: np.ndarray = field(repr=False)
    seconds: float
    iterations: int


@dataclass
class RecordingResult:
    """Every strategy's result on one recording (``full`` = the ground truth) and the grid."""

    strategies: dict[str, StrategyResult]
    grid: ObjectGrid
    region: tuple[slice, slice]


def check_positions(model: AdaptiveModel, positions: int, subsequences: int) -> None:
    """``positions`` in ``subsequences`` steps of the model's n per step: n·(s − 1) < positions ≤ n·s
    (a last step shorter than n is cut short, as the service does)."""
    n = model.settings.policy.subsequence
    if not n * (subsequences - 1) < positions <= n * subsequences:
        raise ParameterError(f"the model proposes {n} positions per step: --positions must be more than "
                             f"{n} × (--subsequences − 1) and at most {n} × --subsequences "
                             f"(got {positions} and {subsequences})")


def _adaptive_indices(acquisition: Acquisition, model: AdaptiveModel, positions: int, subsequences: int,
                      device: torch.device) -> np.ndarray:
    """The recorded patterns the policy visits (its means; the model's own Halton start),
    the first ``positions`` of them."""
    episodes = rollout(EpisodeBatch.over([acquisition], device), model, subsequences,
                       [model.settings.policy.halton_seed])
    return episodes.indices[0][:positions]


def ground_truth(acquisition: Acquisition, device: torch.device, progress: bool = False,
                 cache: Path | None = None) -> Reconstruction:
    """The converged reconstruction from all positions (the reference of every score),
    read from / written to the folder ``cache`` when given (see ``ground_truth_cache``)."""
    def compute() -> Reconstruction:
        return reconstruct_acquisition(acquisition, np.arange(acquisition.count),
                                       RopSettings(iterations=GROUND_TRUTH_ITERATIONS), device=device,
                                       progress=progress)

    return compute() if cache is None else ground_truth_cache.load_or_compute(cache, acquisition, compute)


def score_strategies(acquisition: Acquisition, full: Reconstruction, chosen: dict[str, np.ndarray],
                     final_iterations: int, device: torch.device) -> RecordingResult:
    """Reconstruct each strategy's recorded patterns (``chosen``: name → indices) with
    ``final_iterations`` and score it against ``full``."""
    region = full.grid.scan_region(acquisition.positions_angstrom)
    truth = full.potential.real
    results = {"full": StrategyResult(1.0, resolution_angstrom(truth[region], full.grid.pixel_size_angstrom),
                                      acquisition.positions_angstrom, truth, full.seconds, full.iterations)}
    for name, indices in chosen.items():
        result = reconstruct_acquisition(acquisition, indices, RopSettings(iterations=final_iterations),
                                         device=device)
        phase = result.potential.real
        results[name] = StrategyResult(ssim_phase(phase, truth, region),
                                       resolution_angstrom(phase[region], result.grid.pixel_size_angstrom),
                                       result.positions_angstrom, phase, result.seconds, result.iterations)
    return RecordingResult(results, full.grid, region)


def evaluate_recording(acquisition: Acquisition, model: AdaptiveModel | None, positions: int, subsequences: int,
                       final_iterations: int, seed: int, device: torch.device,
                       progress: bool = False, cache: Path | None = None) -> RecordingResult:
    full = ground_truth(acquisition, device, progress, cache)
    shape = acquisition.scan.shape if acquisition.scan else None
    chosen = {name: select_positions(name, positions, acquisition.positions_angstrom, seed, shape)
              for name in BASELINES}
    if model is not None:
        chosen = {"adaptive": _adaptive_indices(acquisition, model, positions, subsequences, device), **chosen}
    return score_strategies(acquisition, full, chosen, final_iterations, device)


def _bootstrap(values: np.ndarray, rng: np.random.Generator, samples: int = 2000) -> list[float]:
    if len(values) < 2:
        return [float(values.mean()), float(values.mean())]
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(samples)]
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(recordings: list[RecordingResult], positions: int, subsequences: int,
              final_iterations: int, names: list[str]) -> dict:
    rng = np.random.default_rng(0)
    per_recording = [r.strategies for r in recordings]
    strategies = [s for s in ("adaptive", *BASELINES, "full") if s in per_recording[0]]
    report: dict = {"positions": positions, "subsequences": subsequences, "recordings": names,
                    "final_iterations": final_iterations, "ground_truth_iterations": GROUND_TRUTH_ITERATIONS}
    for name in strategies:
        ssim = np.array([r[name].ssim for r in per_recording])
        res = [r[name].resolution_angstrom for r in per_recording if r[name].resolution_angstrom]
        report[name] = {"ssim_mean": float(ssim.mean()), "ssim_std": float(ssim.std()),
                        "ssim": ssim.tolist(), "resolution_angstrom_mean": float(np.mean(res)) if res else None,
                        "resolution_angstrom": [r[name].resolution_angstrom for r in per_recording],
                        "final_iterations": GROUND_TRUTH_ITERATIONS if name == "full" else final_iterations}
    if "adaptive" in report:
        for baseline in (b for b in BASELINES if b in report):
            q = np.array([relative_improvement(r["adaptive"].ssim, r[baseline].ssim) for r in per_recording])
            report[f"q_ssim_vs_{baseline}"] = {"mean": float(q.mean()), "ci95": _bootstrap(q, rng)}
            pairs = [(r["adaptive"].resolution_angstrom, r[baseline].resolution_angstrom) for r in per_recording]
            q_res = [relative_improvement(1 / a, 1 / b) for a, b in pairs if a and b]  # in spatial frequency
            report[f"q_res_vs_{baseline}"] = float(np.mean(q_res)) if q_res else None
    return report


def _markdown(report: dict) -> str:
    lines = [f"# Evaluation: {report['positions']} positions, {report['subsequences']} sub-sequences",
             "", f"{len(report['recordings'])} recordings; final reconstructions with "
             f"{report['final_iterations']} ROP iterations; ground truth: all positions, "
             f"{report['ground_truth_iterations']} iterations.", "",
             "| strategy | SSIM (mean ± std) | resolution (Å, mean) |", "| --- | --- | --- |"]
    for name in ("adaptive", *BASELINES, "full"):
        if name in report:
            entry = report[name]
            res = f"{entry['resolution_angstrom_mean']:.2f}" if entry["resolution_angstrom_mean"] else "—"
            lines.append(f"| {name} | {entry['ssim_mean']:.3f} ± {entry['ssim_std']:.3f} | {res} |")
    compared = [b for b in BASELINES if f"q_ssim_vs_{b}" in report]
    if compared:
        lines += ["", "| adaptive against | Q_SSIM (mean, 95 % bootstrap interval) | Q_res |", "| --- | --- | --- |"]
        for baseline in compared:
            q = report[f"q_ssim_vs_{baseline}"]
            q_res = report[f"q_res_vs_{baseline}"]
            lines.append(f"| {baseline} | {100 * q['mean']:+.1f} % [{100 * q['ci95'][0]:+.1f}, "
                         f"{100 * q['ci95'][1]:+.1f}] | {'—' if q_res is None else f'{100 * q_res:+.1f} %'} |")
    if "latency_ms" in report:
        lines += ["", "Per-step decision latency (batch sent → positions received, over the network):", "",
                  "| strategy | p50 (ms) | p95 (ms) | steps | fallbacks |", "| --- | --- | --- | --- | --- |"]
        for name, entry in report["latency_ms"].items():
            lines.append(f"| {name} | {entry['p50']:.1f} | {entry['p95']:.1f} | {entry['steps']} | "
                         f"{entry['fallbacks']} |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, report: dict, recordings: list[RecordingResult], names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report))
    for name, result in zip(names, recordings):
        folder = out / "positions" / name
        folder.mkdir(parents=True, exist_ok=True)
        panels = []
        for strategy, entry in result.strategies.items():
            if strategy != "full":  # the full scan's positions are the recording's own
                np.savetxt(folder / f"{strategy}.csv", entry.positions_angstrom, delimiter=",",
                           header="y_angstrom,x_angstrom", comments="", fmt="%.4f")
            title = f"{strategy}: SSIM {entry.ssim:.3f}" if strategy != "full" else "full data (ground truth)"
            panels.append(Panel(title, entry.phase, result.grid, result.region,
                                None if strategy == "full" else entry.positions_angstrom, entry.resolution_angstrom))
        save_comparison(out / "figures" / f"{name}.png", panels, f"{name}: {report['positions']} positions")


def evaluate(model: AdaptiveModel | None, acquisitions: list[Acquisition], names: list[str], positions: int,
             subsequences: int, final_iterations: int, out: Path, seed: int, device: torch.device,
             cache: Path | None = None) -> dict:
    """Every recording scored (``cache``: a folder of ground truths kept between evaluations)."""
    if model is not None:
        check_positions(model, positions, subsequences)
    for name, acquisition in zip(names, acquisitions):
        if acquisition.count < positions:
            raise ParameterError(f"{name} holds {acquisition.count} patterns, fewer than --positions {positions}")
    recordings = [evaluate_recording(a, model, positions, subsequences, final_iterations, seed + i, device,
                                     cache=cache)
                  for i, a in enumerate(tqdm(acquisitions, desc="evaluate", unit="recording"))]
    report = summarise(recordings, positions, subsequences, final_iterations, names)
    write_outputs(out, report, recordings, names)
    return report
