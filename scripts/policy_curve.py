"""The REINFORCE curve of a policy's means (issue 13): each snapshot of a run's ``rl``
checkpoint played with its means on fixed recordings, scored as the ``quality`` reward does
(the headline r_true_material after the last sub-sequence, the training's reconstruction,
material from the truth), relative to the Halton scan on the same recording and to the
run's starting model on the same recording (paired: every snapshot meets the same specimens,
so the specimens' own spread cancels).

The training log's ``gap_to_halton`` is the same score on the few specimens each iteration
happens to draw; this is the curve on one fixed set, so a rise is the policy's, not the draw's.
Snapshots: ``RUN/snapshots/rl-it-N.safetensors`` (``train rl --snapshots``: each checkpoint's weights;
``it-N.safetensors``: copies of ``rl.checkpoint.safetensors``, as the runs of docs/results/reinforce
were made); the run's starting model is iteration 0.

    .venv/bin/python scripts/policy_curve.py --run runs/v2-rl-vine32 --start runs/v2/imitate \\
        --run runs/v2-rl-vine-from-v1 --start runs/v2/mos2-cpu-v2 \\
        --data data/v2-train/*02000[0-9].h5 data/v2-train/*02001[01].h5 --out docs/results/reinforce/policy_curve
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import matplotlib
import numpy as np
import torch
from safetensors.torch import load_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scan_server.io.open import open_recording  # noqa: E402
from scan_server.policy.model_folder import ModelFolder  # noqa: E402
from scan_server.rollout import EpisodeBatch, halton_teacher, rollout  # noqa: E402
from scan_server.training.reinforce import headline_scores  # noqa: E402


def scores(model, acquisitions, steps: int, rop_iterations: int, halton: bool = False,
           score_iterations: int | None = None):
    """The quality reward after the last sub-sequence of each recording's episode (means or
    Halton; the final reconstruction with ``score_iterations`` from scratch when given, as
    ``train rl --score-iterations`` scores it), and the episodes."""
    batch = EpisodeBatch.over(acquisitions)
    seeds = [model.settings.policy.halton_seed] * len(acquisitions)
    teacher = halton_teacher(model.settings.policy.subsequence, seeds) if halton else None
    episodes = rollout(batch, model, steps, seeds, iterations=rop_iterations, teacher=teacher,
                       final_iterations=score_iterations)
    phases = episodes.final.real[:, None, batch.region[0], batch.region[1]].float()
    return headline_scores(batch, phases)[:, 0].numpy(), episodes


def drift_sigma(model, episodes) -> float:
    """RMS distance (in σ) between the model's means and those the episodes recorded, on the
    episodes' own states (how far training moved the policy)."""
    with torch.no_grad():
        means, _ = model(episodes.inputs_positions, episodes.latents)
    return float((means - episodes.means).norm(dim=-1).square().mean().sqrt() / model.settings.policy.sigma)


def snapshots(run: Path) -> list[tuple[int, Path]]:
    paths = [*(run / "snapshots").glob("rl-it-*.safetensors"), *(run / "snapshots").glob("it-*.safetensors")]
    found = [(int(re.search(r"it-(\d+)", p.name).group(1)), p) for p in paths]
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, action="append", help="run folder(s) with snapshots/")
    parser.add_argument("--start", type=Path, required=True, action="append",
                        help="the model folder each run started from (one per --run, in order)")
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rop-iterations", type=int, default=5)
    parser.add_argument("--score-iterations", type=int,
                        help="ROP iterations from scratch of the scored final reconstruction (default: "
                             "--rop-iterations; the policy still sees the in-loop ones)")
    parser.add_argument("--every", type=int, default=1, help="only snapshots of iterations divisible by this")
    parser.add_argument("--out", type=Path, required=True, help="CSV and PNG go to OUT.csv and OUT.png")
    args = parser.parse_args()
    if len(args.start) != len(args.run):
        parser.error("give one --start per --run")
    acquisitions = [open_recording(p) for p in args.data]
    rows, halton, starts = [], None, {}
    for run, start_folder in zip(args.run, args.start):
        model, _ = ModelFolder(start_folder).load(torch.device("cpu"), verify=False)
        if halton is None:  # the Halton scan does not depend on the policy
            halton, _ = scores(model, acquisitions, args.steps, args.rop_iterations, True, args.score_iterations)
        start, start_episodes = scores(model, acquisitions, args.steps, args.rop_iterations,
                                       score_iterations=args.score_iterations)
        starts[run.name] = start
        rows.append((run.name, 0, 0.0, start))
        for iteration, path in snapshots(run):
            if iteration % args.every:
                continue
            tensors = load_file(str(path))
            # a snapshot holds the weights; a copied checkpoint holds them under "model."
            weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")} or tensors
            model.load_state_dict(weights)
            drift = drift_sigma(model, start_episodes)
            score, _ = scores(model, acquisitions, args.steps, args.rop_iterations,
                              score_iterations=args.score_iterations)
            rows.append((run.name, iteration, drift, score))
            print(f"{run.name} {iteration}: gap to Halton {np.mean(rows[-1][3] - halton):+.4f}, "
                  f"to the start {np.mean(rows[-1][3] - start):+.4f}, means moved {drift:.2f} σ", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "iteration", "drift_sigma", "gap_to_halton", "gap_to_halton_se", "gain_over_start",
                         "gain_over_start_se", *[f"score:{p.stem}" for p in args.data]])
        for name, iteration, drift, s in rows:
            n = len(s)
            start = starts[name]
            writer.writerow([name, iteration, drift, np.mean(s - halton), np.std(s - halton, ddof=1) / n**0.5,
                             np.mean(s - start), np.std(s - start, ddof=1) / n**0.5, *s])
    plot(rows, starts, halton, len(acquisitions), args.out.with_suffix(".png"))


def plot(rows: list, starts: dict, halton: np.ndarray, count: int, path: Path) -> None:
    """Left: each run's gain over its starting model (paired); right: its gap to Halton."""
    figure, (gain_axes, gap_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for name, start in starts.items():
        mine = [(i, s) for run, i, _, s in rows if run == name]
        its = np.array([i for i, _ in mine])
        for axes, reference in ((gain_axes, start), (gap_axes, halton)):
            mean = np.array([np.mean(s - reference) for _, s in mine])
            se = np.array([np.std(s - reference, ddof=1) / len(s) ** 0.5 for _, s in mine])
            axes.errorbar(its, mean, yerr=se, marker="o", ms=3, capsize=2, label=name)
    gain_axes.axhline(0, color="grey", lw=0.8)
    gap_axes.axhline(0, color="tab:red", lw=0.8, ls="--", label="Halton")
    gain_axes.set_ylabel("headline r − the starting model's (paired)")
    gap_axes.set_ylabel("headline r − Halton's (paired)")
    for axes in (gain_axes, gap_axes):
        axes.set_xlabel("REINFORCE iteration")
        axes.legend(fontsize=8)
    figure.suptitle(f"the policy's means on {count} fixed recordings (± s.e. over them)")
    figure.tight_layout()
    figure.savefig(path, dpi=130)


if __name__ == "__main__":
    main()
