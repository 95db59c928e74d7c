"""``scan-server evaluate``: dose–quality curves of every strategy against random, Halton
and sparse raster scans, with a reference that knows the answer (docs/evaluation.md).

For each recording: the reference of every score is the converged reconstruction from
all positions (``full``) and, when the recording has one, the true phase
(``scores.ScoreReference``). Each strategy is scored at every count of the ``DosePlan``:
a sequential strategy (adaptive, Halton, random, oracle-material) is run once to the
largest count and scored on its prefixes; the sparse raster is planned per count. Every
final reconstruction gets the same ``final_iterations`` (default: converged; 5 = the
paper's protocol). ``dose_ratio_vs_halton``: the positions a strategy needs to reach
Halton's headline score at ``reference_positions``, divided by it (``dose.py``). At the
reference count the paper's figures are kept too: SSIM against the full-data
reconstruction, diffractogram resolution, Q_SSIM = (a − b)/b with a paired bootstrap
interval, Q_res = d_b / d_a − 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..contracts import Acquisition
from ..errors import ParameterError
from ..physics.detector_correction import DetectorCorrection
from ..physics.detector_signals import acquisition_nominal_radius_px, recording_correction_or_none
from ..physics.reconstruct import (
    GROUND_TRUTH_ITERATIONS,
    Reconstruction,
    RopSettings,
    reconstruct_acquisition,
    reconstruct_subsets,
    reconstruction_geometry,
)
from ..policy.model import AdaptiveModel
from ..policy.strategy import learned_strategy
from ..rollout import EpisodeBatch, rollout
from ..scanning.acquire import run_strategy
from ..scanning.registry import (
    ADAPTIVE,
    BASELINE_STRATEGIES,
    EVALUATED_STRATEGIES,
    HALTON,
    REFERENCE_STRATEGIES,
    STRATEGIES,
    StrategyContext,
    build_strategy,
)
from ..scanning.virtual_microscope import VirtualMicroscope
from . import ground_truth_cache
from .dose import bootstrap_mean_interval, dose_ratio
from .figures import Panel, save_comparison, save_dose_quality
from .metrics import relative_improvement, resolution_angstrom
from .agreement import score_agreement
from .scores import HEADLINE_WITH_TRUTH, HEADLINE_WITHOUT_TRUTH, SCORE_NAMES, TRUTH_FREE_SCORES, ScoreReference, Scores

#: positions per step of a strategy that decides step by step, when nothing else says (the paper's 50)
DEFAULT_PER_STEP = 50
#: the default count at which Halton's quality is the target of the dose ratios
DEFAULT_REFERENCE_POSITIONS = 250


@dataclass(frozen=True)
class DosePlan:
    """The position counts of the curves (increasing) and the reference count among them."""

    positions: tuple[int, ...]
    reference_positions: int

    @classmethod
    def of(cls, positions: list[int] | tuple[int, ...], reference_positions: int | None = None) -> DosePlan:
        """Counts sorted; the reference defaults to the only count, else to 250 (which must be one)."""
        counts = tuple(sorted(set(int(p) for p in positions)))
        if not counts or counts[0] < 1:
            raise ParameterError("--positions needs counts of at least 1")
        if reference_positions is None:
            reference_positions = counts[0] if len(counts) == 1 else DEFAULT_REFERENCE_POSITIONS
        if reference_positions not in counts:
            raise ParameterError(f"--reference-positions {reference_positions} must be one of --positions "
                                 f"{' '.join(map(str, counts))}")
        return cls(counts, reference_positions)

    @property
    def largest(self) -> int:
        return self.positions[-1]


@dataclass
class StrategyCurve:
    """One strategy on one recording: the recorded patterns used at each count (acquisition
    order), the scores at each count, and the reconstruction at the reference count."""

    indices: dict[int, np.ndarray]
    scores: dict[int, Scores]
    reference: Reconstruction


@dataclass
class RecordingResult:
    """Every strategy's curve on one recording, the score reference and the full-data
    reconstruction (with its own scores: 1 against itself, its fit to the truth)."""

    strategies: dict[str, StrategyCurve]
    reference: ScoreReference
    full: Reconstruction
    full_scores: Scores
    recorded_angstrom: np.ndarray
    family: str | None = None  # the specimen family of a simulated recording


def check_positions(model: AdaptiveModel, positions: int, subsequences: int) -> None:
    """``positions`` in ``subsequences`` steps of the model's n per step: n·(s − 1) < positions ≤ n·s
    (a last step shorter than n is cut short, as the service does)."""
    n = model.settings.policy.subsequence
    if not n * (subsequences - 1) < positions <= n * subsequences:
        raise ParameterError(f"the model proposes {n} positions per step: --positions must be more than "
                             f"{n} × (--subsequences − 1) and at most {n} × --subsequences "
                             f"(got {positions} and {subsequences})")


def _adaptive_indices(acquisition: Acquisition, model: AdaptiveModel, positions: int,
                      device: torch.device) -> np.ndarray:
    """The recorded patterns the policy visits (its means; the model's own Halton start), the
    first ``positions`` of them, in acquisition order."""
    steps = math.ceil(positions / model.settings.policy.subsequence)
    episodes = rollout(EpisodeBatch.over([acquisition], device, corrected=True), model, steps, [model.settings.policy.halton_seed],
                       final_iterations=0)  # the final reconstructions are made per count, below
    return episodes.indices[0][:positions]


def ground_truth(acquisition: Acquisition, device: torch.device, progress: bool = False,
                 cache: Path | None = None) -> Reconstruction:
    """The converged reconstruction from all positions (the reference of every score),
    read from / written to the folder ``cache`` when given (see ``ground_truth_cache``)."""
    def compute() -> Reconstruction:
        return reconstruct_acquisition(acquisition, np.arange(acquisition.count),
                                       RopSettings(iterations=GROUND_TRUTH_ITERATIONS), device=device,
                                       progress=progress, correction=detector_correction_of(acquisition))

    return compute() if cache is None else ground_truth_cache.load_or_compute(cache, acquisition, compute)


def detector_correction_of(acquisition: Acquisition) -> DetectorCorrection | None:
    """The detector's corrections every reconstruction of a recording is made with (measured
    from its patterns: ``physics.detector_correction``); ``None``, with a warning, where the
    disc is too far off the metadata's to correct."""
    return recording_correction_or_none(acquisition, reconstruction_geometry(acquisition))


def score_reference(acquisition: Acquisition, full: Reconstruction) -> ScoreReference:
    region = full.grid.scan_region(acquisition.positions_angstrom)
    return ScoreReference.build(full.potential.real, full.grid, region, acquisition.ground_truth)


def score_strategies(acquisition: Acquisition, full: Reconstruction, chosen: dict[str, dict[int, np.ndarray]],
                     final_iterations: int, reference_positions: int, device: torch.device,
                     reference: ScoreReference | None = None, progress: bool = False) -> RecordingResult:
    """Reconstruct each strategy's recorded patterns at each count (``chosen``: name → count →
    indices) with ``final_iterations`` and score them; one batched ROP run per strategy."""
    reference = reference or score_reference(acquisition, full)
    correction = detector_correction_of(acquisition)
    curves = {}
    for name, by_count in tqdm(chosen.items(), desc="final reconstructions", unit="strategy", leave=False,
                               disable=not progress):
        counts = sorted(by_count)
        results = reconstruct_subsets(acquisition, [by_count[c] for c in counts],
                                      RopSettings(iterations=final_iterations), device=device,
                                      correction=correction)
        scores = {c: reference.score(r.potential.real) for c, r in zip(counts, results)}
        curves[name] = StrategyCurve(dict(by_count), scores, results[counts.index(reference_positions)])
    family = (acquisition.metadata.get("specimen") or {}).get("family")
    return RecordingResult(curves, reference, full, reference.score(full.potential.real),
                           acquisition.positions_angstrom, family)


def _recorded_run(name: str, acquisition: Acquisition, count: int, seed: int, reference: ScoreReference,
                  model: AdaptiveModel | None = None, per_step: int = DEFAULT_PER_STEP) -> np.ndarray:
    """Indices of a strategy that decides without a reconstruction (a baseline, a reference,
    the value map) played on the recording to ``count`` positions in steps of ``per_step``, in
    acquisition order. The value map sees the dark field metered as the service meters it:
    calibrated on the scan's own patterns as they arrive."""
    microscope = VirtualMicroscope(acquisition.positions_angstrom)
    context = StrategyContext(count, seed, acquisition.scan.shape if acquisition.scan else None,
                              learned=None if model is None else partial(learned_strategy, model),
                              material_at_unit=lambda unit: reference.material_at(microscope.to_angstrom(unit)))
    return run_strategy(build_strategy(name, context), microscope, count, per_step, acquisition.frames,
                        acquisition_nominal_radius_px(acquisition))


def evaluated_strategies(model: AdaptiveModel | None, only: list[str] | None = None) -> list[str]:
    """The strategies an evaluation compares: every served one the model (if any) allows, and
    the references (``only``: those of them named, in the report's order)."""
    for name in only or ():
        if STRATEGIES[name].needs_model and (model is None or name not in model.strategies):
            raise ParameterError(f"{name} needs a model that serves it (--model)")
    return [name for name in EVALUATED_STRATEGIES if (only is None or name in only)
            and (not STRATEGIES[name].needs_model or (model is not None and name in model.strategies))]


def choose_positions(acquisition: Acquisition, model: AdaptiveModel | None, plan: DosePlan, seed: int,
                     reference: ScoreReference, device: torch.device, only: list[str] | None = None,
                     per_step: int = DEFAULT_PER_STEP) -> dict[str, dict[int, np.ndarray]]:
    """Every strategy's recorded patterns at every count of the plan: a sequential one run once
    to the largest count (its prefixes), the others planned per count; the learned ones only
    with a model (with its own Halton start; ``adaptive`` through the batched rollout)."""
    chosen = {}
    for name in evaluated_strategies(model, only):
        if name == ADAPTIVE:
            run = _adaptive_indices(acquisition, model, plan.largest, device)  # type: ignore[arg-type]
            chosen[name] = {c: run[:c] for c in plan.positions}
        elif STRATEGIES[name].sequential:
            run = _recorded_run(name, acquisition, plan.largest, seed, reference, model, per_step)
            chosen[name] = {c: run[:c] for c in plan.positions}
        else:
            chosen[name] = {c: _recorded_run(name, acquisition, c, seed, reference) for c in plan.positions}
    return chosen


def evaluate_recording(acquisition: Acquisition, model: AdaptiveModel | None, plan: DosePlan,
                       final_iterations: int, seed: int, device: torch.device,
                       progress: bool = False, cache: Path | None = None,
                       only: list[str] | None = None, per_step: int = DEFAULT_PER_STEP) -> RecordingResult:
    full = ground_truth(acquisition, device, progress, cache)
    reference = score_reference(acquisition, full)
    chosen = choose_positions(acquisition, model, plan, seed, reference, device, only, per_step)
    return score_strategies(acquisition, full, chosen, final_iterations, plan.reference_positions, device,
                            reference, progress)


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def _curves(recordings: list[RecordingResult], names: list[str], plan: DosePlan) -> tuple[dict, dict]:
    """Mean scores (strategy → count → score → value) and the per-recording ones."""
    per_recording = {name: {"material_fraction": r.reference.material_fraction,
                            "strategies": {s: {str(c): curve.scores[c].as_dict() for c in plan.positions}
                                           for s, curve in r.strategies.items()}}
                     for name, r in zip(names, recordings)}
    means = {}
    for strategy in recordings[0].strategies:
        means[strategy] = {str(c): {score: _mean([getattr(r.strategies[strategy].scores[c], score)
                                                  for r in recordings]) for score in SCORE_NAMES}
                           for c in plan.positions}
    return means, per_recording


def _dose_ratios(recordings: list[RecordingResult], plan: DosePlan, headline: str) -> dict:
    if len(plan.positions) < 2 or HALTON not in recordings[0].strategies:
        return {}
    counts = list(plan.positions)

    def curve(r: RecordingResult, strategy: str) -> list[float]:
        return [getattr(r.strategies[strategy].scores[c], headline) for c in counts]

    halton = [curve(r, HALTON) for r in recordings]
    return {s: dose_ratio(counts, [curve(r, s) for r in recordings], halton, plan.reference_positions)
            for s in recordings[0].strategies if s != HALTON}


def _by_family(recordings: list[RecordingResult], ratios: dict) -> dict:
    """The mean dose ratio of each strategy per specimen family (simulated recordings only)."""
    families = [r.family for r in recordings]
    if None in families:
        return {}
    return {strategy: {family: float(np.mean([v for v, f in zip(entry["per_recording"], families) if f == family]))
                       for family in dict.fromkeys(families)}
            for strategy, entry in ratios.items()}


def _paper_protocol(recordings: list[RecordingResult], plan: DosePlan) -> dict:
    """At the reference count: SSIM against the full-data reconstruction (the paper's score),
    resolution, and each learned strategy's Q against each baseline (``adaptive``'s also at the
    top level, as Table I reads it)."""
    ref = plan.reference_positions
    report: dict = {}
    for name in (*recordings[0].strategies, "full"):
        scores = [r.full_scores if name == "full" else r.strategies[name].scores[ref] for r in recordings]
        ssim = np.array([s.ssim_field for s in scores])
        res = [s.resolution_angstrom for s in scores]
        known = [v for v in res if v]
        report[name] = {"ssim_mean": float(ssim.mean()), "ssim_std": float(ssim.std()), "ssim": ssim.tolist(),
                        "resolution_angstrom_mean": float(np.mean(known)) if known else None,
                        "resolution_angstrom": res}
    for learned in (name for name in recordings[0].strategies if STRATEGIES[name].needs_model):
        for baseline in (b for b in BASELINE_STRATEGIES if b in report):
            pairs = [(r.strategies[learned].scores[ref], r.strategies[baseline].scores[ref]) for r in recordings]
            q = [relative_improvement(a.ssim_field, b.ssim_field) for a, b in pairs]
            q_res = [relative_improvement(1 / a.resolution_angstrom, 1 / b.resolution_angstrom)
                     for a, b in pairs if a.resolution_angstrom and b.resolution_angstrom]  # in spatial frequency
            figures = {f"q_ssim_vs_{baseline}": {"mean": float(np.mean(q)), "ci95": bootstrap_mean_interval(q)},
                       f"q_res_vs_{baseline}": float(np.mean(q_res)) if q_res else None}
            report[learned].update(figures)
            if learned == ADAPTIVE:  # the paper's Q of its policy, also at the top level (Table I)
                report.update(figures)
    return report


def summarise(recordings: list[RecordingResult], plan: DosePlan, final_iterations: int, names: list[str],
              positions_per_step: int) -> dict:
    """The report (report.json): curves, dose ratios, the paper's figures at the reference count."""
    headline = HEADLINE_WITH_TRUTH if all(r.reference.truth_rad is not None for r in recordings) \
        else HEADLINE_WITHOUT_TRUTH
    scores, per_recording = _curves(recordings, names, plan)
    report: dict = {"recordings": names, "positions": list(plan.positions),
                    "reference_positions": plan.reference_positions, "positions_per_step": positions_per_step,
                    "subsequences": math.ceil(plan.reference_positions / positions_per_step),
                    "final_iterations": final_iterations, "ground_truth_iterations": GROUND_TRUTH_ITERATIONS,
                    "headline_score": headline, "references": [s for s in REFERENCE_STRATEGIES
                                                               if s in recordings[0].strategies],
                    "scores": scores, "dose_ratio_vs_halton": _dose_ratios(recordings, plan, headline),
                    "per_recording": per_recording}
    report["dose_ratio_by_family"] = _by_family(recordings, report["dose_ratio_vs_halton"])
    if headline == HEADLINE_WITH_TRUTH and report["dose_ratio_vs_halton"]:
        # every truth-free score's dose ratios beside the truth's, and how well they agree (evaluation/agreement.py)
        free = {score: _dose_ratios(recordings, plan, score) for score in TRUTH_FREE_SCORES}
        report["dose_ratio_by_score"] = free
        report["truth_free_agreement"] = {score: score_agreement(report["dose_ratio_vs_halton"], ratios)
                                          for score, ratios in free.items()}
    for name, result in zip(names, recordings):
        per_recording[name]["family"] = result.family
    report.update(_paper_protocol(recordings, plan))
    return report


def _format(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _markdown_curves(report: dict) -> list[str]:
    headline, counts = report["headline_score"], [str(c) for c in report["positions"]]
    lines = [f"Headline score: `{headline}` (docs/evaluation.md). Mean over recordings:", "",
             "| strategy | " + " | ".join(counts) + " |", "| --- |" + " --- |" * len(counts)]
    for name, curve in report["scores"].items():
        label = f"{name} (reference)" if name in report["references"] else name
        lines.append(f"| {label} | " + " | ".join(_format(curve[c][headline]) for c in counts) + " |")
    ratios = report["dose_ratio_vs_halton"]
    if ratios:
        lines += ["", f"Positions needed to reach Halton's {headline} at {report['reference_positions']} positions, "
                  "as a fraction of them (mean, 95 % bootstrap interval over recordings; bounded = reached at the "
                  "first count or never):", "", "| strategy | dose ratio vs Halton | bounded |", "| --- | --- | --- |"]
        for name, entry in ratios.items():
            low, high = entry["ci95"]
            lines.append(f"| {name} | {entry['mean']:.2f} [{low:.2f}, {high:.2f}] | "
                         f"{entry['at_first_count'] + entry['not_reached']} of {len(entry['per_recording'])} |")
    agreement = report.get("truth_free_agreement") or {}
    if agreement:
        lines += ["", "Scores without a truth, held against it (evaluation/agreement.py): the dose ratios each would "
                  f"report, the difference of their means from the truth's, and on how many recordings it ranks the "
                  f"strategies as the truth does (the headline without a truth: `{HEADLINE_WITHOUT_TRUTH}`):", "",
                  "| score | " + " | ".join(f"{s} ratio" for s in ratios) + " | max mean difference | "
                  "ranking agreement | pair agreement |", "| --- |" + " --- |" * (len(ratios) + 3)]
        for score, entry in agreement.items():
            by_score = report["dose_ratio_by_score"][score]
            lines.append(f"| {score} | " + " | ".join(f"{by_score[s]['mean']:.2f}" for s in ratios) +
                         f" | {entry['max_abs_mean_ratio_difference']:.3f} | {100 * entry['ranking_agreement']:.0f} % | "
                         f"{100 * entry['pair_agreement']:.0f} % |")
    by_family = report.get("dose_ratio_by_family") or {}
    if by_family:
        families = list(next(iter(by_family.values())))
        lines += ["", "Dose ratio vs Halton by specimen family (mean over its recordings):", "",
                  "| strategy | " + " | ".join(families) + " |", "| --- |" + " --- |" * len(families)]
        for name, entry in by_family.items():
            lines.append(f"| {name} | " + " | ".join(f"{entry[f]:.2f}" for f in families) + " |")
    return lines


def _markdown(report: dict) -> str:
    ref = report["reference_positions"]
    lines = [f"# Evaluation: {', '.join(map(str, report['positions']))} positions",
             "", f"{len(report['recordings'])} recordings; final reconstructions with "
             f"{report['final_iterations']} ROP iterations; reference: all positions, "
             f"{report['ground_truth_iterations']} iterations.", "", *_markdown_curves(report), "",
             f"At {ref} positions ({report['subsequences']} steps of {report['positions_per_step']}), all scores "
             "(mean over recordings):", "",
             "| strategy | SSIM field (± std) | SSIM material | r material | r true, material | SSIM true, material | "
             "resolution (Å) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in report["scores"]:
        entry, scores = report[name], report["scores"][name][str(ref)]
        lines.append(f"| {name} | {entry['ssim_mean']:.3f} ± {entry['ssim_std']:.3f} | "
                     f"{_format(scores['ssim_material'])} | {_format(scores['r_material'])} | "
                     f"{_format(scores['r_true_material'])} | "
                     f"{_format(scores['ssim_true_material'])} | {_format(entry['resolution_angstrom_mean'], 2)} |")
    learned = [name for name in report["scores"] if any(k.startswith("q_ssim_vs_") for k in report[name])]
    if learned:
        lines += ["", "Paper protocol (whole-field SSIM against the full-data reconstruction):", "",
                  "| strategy | against | Q_SSIM (mean, 95 % bootstrap interval) | Q_res |", "| --- | --- | --- | --- |"]
        for name in learned:
            for baseline in (b for b in BASELINE_STRATEGIES if f"q_ssim_vs_{b}" in report[name]):
                q, q_res = report[name][f"q_ssim_vs_{baseline}"], report[name][f"q_res_vs_{baseline}"]
                lines.append(f"| {name} | {baseline} | {100 * q['mean']:+.1f} % [{100 * q['ci95'][0]:+.1f}, "
                             f"{100 * q['ci95'][1]:+.1f}] | {'—' if q_res is None else f'{100 * q_res:+.1f} %'} |")
    if "latency_ms" in report:
        lines += ["", "Per-step decision latency (batch sent → positions received, over the network):", "",
                  "| strategy | p50 (ms) | p95 (ms) | steps | fallbacks |", "| --- | --- | --- | --- | --- |"]
        for name, entry in report["latency_ms"].items():
            lines.append(f"| {name} | {entry['p50']:.1f} | {entry['p95']:.1f} | {entry['steps']} | "
                         f"{entry['fallbacks']} |")
    return "\n".join(lines) + "\n"


def _write_positions(folder: Path, result: RecordingResult, reference_positions: int) -> None:
    """``<strategy>.csv``: a sequential strategy's whole scan in acquisition order (any prefix
    is its scan of that many positions); a per-count plan (raster): the reference count's
    as ``<strategy>.csv``, the others as ``<strategy>_<count>.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    for strategy, curve in result.strategies.items():
        largest = max(curve.indices)
        files = {strategy: curve.indices[largest]}
        if not STRATEGIES[strategy].sequential:
            files = {strategy if c == reference_positions else f"{strategy}_{c}": idx
                     for c, idx in curve.indices.items()}
        for stem, indices in files.items():
            np.savetxt(folder / f"{stem}.csv", result.recorded_angstrom[indices], delimiter=",",
                       header="y_angstrom,x_angstrom", comments="", fmt="%.4f")


def write_outputs(out: Path, report: dict, recordings: list[RecordingResult], names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report))
    ref = report["reference_positions"]
    for name, result in zip(names, recordings):
        _write_positions(out / "positions" / name, result, ref)
        fraction = result.reference.material_fraction
        mask = "the whole field is material" if fraction == 1 else \
            f"orange line: material mask, {100 * fraction:.0f} % of the field"
        save_comparison(out / "figures" / f"{name}.png", _panels(result, ref), f"{name}: {ref} positions ({mask})")
    if len(report["positions"]) > 1:
        save_dose_quality(out / "figures" / "dose_quality.png", report)


def _panels(result: RecordingResult, positions: int) -> list[Panel]:
    """Each strategy at ``positions`` in the report's order, then the full-data reference and,
    for a simulation, the true phase."""
    reference, truth = result.reference, result.reference.truth_rad
    panels = []
    for strategy, curve in result.strategies.items():
        scores = curve.scores[positions]
        title = f"{strategy}: SSIM {scores.ssim_field:.3f}" + (
            f", r_true {scores.r_true_material:.3f}" if truth is not None else
            f", SSIM mat. {scores.ssim_material:.3f}")
        panels.append(Panel(title, curve.reference.potential.real, reference.grid, reference.region,
                            result.recorded_angstrom[curve.indices[positions]], scores.resolution_angstrom,
                            reference.material))
    panels.append(Panel(f"all {len(result.recorded_angstrom)} positions (reference)", result.full.potential.real,
                        reference.grid, reference.region, None, result.full_scores.resolution_angstrom,
                        reference.material))
    if truth is not None:
        panels.append(Panel("true phase (simulation)", truth, reference.grid, reference.region, None,
                            resolution_angstrom(truth[reference.region], reference.grid.pixel_size_angstrom),
                            reference.material))
    return panels


def evaluate(model: AdaptiveModel | None, acquisitions: list[Acquisition], names: list[str], plan: DosePlan,
             subsequences: int | None, final_iterations: int, out: Path, seed: int, device: torch.device,
             cache: Path | None = None, only: list[str] | None = None, seed_step: int = 1) -> dict:
    """Every recording scored (``cache``: a folder of ground truths kept between evaluations;
    ``only``: these strategies); recording i's seed is ``seed + seed_step · i`` (0: all the
    same). ``subsequences``: the adaptive policy's steps are checked
    against its model (its step size is fixed); the value map takes the largest count in that
    many equal steps (default: the model's step size)."""
    strategies = evaluated_strategies(model, only)  # a clear error before any work
    if model is not None and subsequences is not None and ADAPTIVE in strategies:
        check_positions(model, plan.largest, subsequences)
    for name, acquisition in zip(names, acquisitions):
        if acquisition.count < plan.largest:
            raise ParameterError(f"{name} holds {acquisition.count} patterns, fewer than --positions {plan.largest}")
    per_step = model.settings.policy.subsequence if model is not None else DEFAULT_PER_STEP
    if subsequences is not None and ADAPTIVE not in strategies:
        per_step = math.ceil(plan.largest / subsequences)
    seeds = [seed + seed_step * i for i in range(len(acquisitions))]
    recordings = [evaluate_recording(a, model, plan, final_iterations, s, device, True, cache, only, per_step)
                  for a, s in zip(tqdm(acquisitions, desc="evaluate", unit="recording"), seeds)]
    report = {**summarise(recordings, plan, final_iterations, names, per_step), "baseline_seeds": seeds}
    write_outputs(out, report, recordings, names)
    return report
