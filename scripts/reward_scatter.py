"""Does the yardstick's headline score rise with the training reward? (issue 13, deliverable 2)

For each recording, the GRU policy of a model is played to ``--steps`` sub-sequences in
several ways from the same Halton start: its means, and Gaussian samples around them with σ
and with ``--wide`` × σ (``--samples`` of each), plus the Halton scan itself. Each episode gets

* the rewards REINFORCE sees, with the training's reconstruction (``--rop-iterations`` from
  scratch after the last sub-sequence): ``quality`` (r_true_material against the true phase
  over the true phase's material, ``training.rewards``) and the paper's ``voronoi`` return
  (Σ of its positions' Voronoi rewards);
* the headline score as the yardstick computes it: the episode's recorded patterns
  reconstructed with ``--final-iterations`` and scored against the recording's truth over the
  material of the converged full-data reconstruction (read from ``--ground-truth-cache``).

Everything is taken relative to the Halton scan on the same recording (the episode's value
minus Halton's), so specimens of different difficulty share one scale. Writes
``reward_scatter.csv`` and ``reward_scatter.png`` (headline gap against each reward's gap, with
Pearson and Spearman correlations over the episodes that are not Halton, and Pearson's within
recordings: each recording's episodes centred on their mean, which is what a per-specimen
baseline leaves to learn from) to ``--out``. ``--replot`` redraws the figure from the CSV.

    .venv/bin/python scripts/reward_scatter.py --model models/mos2-cpu-v2 \
        --data data/v2-validation/*.h5 --ground-truth-cache runs/gt-cache-val --out docs/results/reinforce
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scan_server.evaluation import DEFAULT_FINAL_ITERATIONS  # noqa: E402
from scan_server.evaluation.evaluate import ground_truth, score_reference  # noqa: E402
from scan_server.io.open import open_recording  # noqa: E402
from scan_server.physics.reconstruct import RopSettings, reconstruct_subsets  # noqa: E402
from scan_server.policy.model_folder import ModelFolder  # noqa: E402
from scan_server.rollout import (  # noqa: E402
    EpisodeBatch,
    halton_teacher,  # noqa: E402
    rollout,
)
from scan_server.training.reinforce import episode_rewards, headline_scores  # noqa: E402


def play(model, acquisition, steps: int, sigma: float | None, samples: int, rop_iterations: int,
         generator: torch.Generator):
    """``samples`` episodes on one recording: the means (sigma None) or samples with σ = sigma."""
    batch = EpisodeBatch.over([acquisition] * samples)
    seeds = [model.settings.policy.halton_seed] * samples
    if sigma is not None:
        model.policy.settings = replace(model.policy.settings, sigma=sigma)
        model.settings = replace(model.settings, policy=model.policy.settings)
    return batch, rollout(batch, model, steps, seeds, sample=sigma is not None, generator=generator,
                          iterations=rop_iterations, keep_phases=True)


def halton(model, acquisition, steps: int, rop_iterations: int):
    batch = EpisodeBatch.over([acquisition])
    seeds = [model.settings.policy.halton_seed]
    return batch, rollout(batch, model, steps, seeds, iterations=rop_iterations,
                          teacher=halton_teacher(model.settings.policy.subsequence, seeds), keep_phases=True)


def training_rewards(batch: EpisodeBatch, episodes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quality, voronoi, error) of each episode of a batch over one recording."""
    quality = headline_scores(batch, episodes.phases[:, -1:])[:, 0]
    voronoi = episode_rewards(batch, episodes.positions_angstrom, episodes.final, "voronoi").sum(dim=(1, 2))
    error = episode_rewards(batch, episodes.positions_angstrom, episodes.final, "error").sum(dim=(1, 2))
    return quality.numpy(), voronoi.numpy(), error.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path, nargs="+")
    parser.add_argument("--ground-truth-cache", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--wide", type=float, default=4.0, help="the wider samples' σ in units of the policy's")
    parser.add_argument("--rop-iterations", type=int, default=5)
    parser.add_argument("--final-iterations", type=int, default=DEFAULT_FINAL_ITERATIONS)
    parser.add_argument("--replot", action="store_true", help="only redraw the figure from --out's CSV")
    args = parser.parse_args()
    if args.replot:
        rows = [{k: v if k in ("recording", "family", "episode") else float(v) for k, v in r.items()}
                for r in csv.DictReader((args.out / "reward_scatter.csv").open())]
        plot(rows, args.out / "reward_scatter.png")
        return
    if args.model is None or not args.data:
        parser.error("--model and --data are required (unless --replot)")
    device = torch.device("cpu")
    model, _ = ModelFolder(args.model).load(device, verify=False)
    sigma = model.settings.policy.sigma
    generator = torch.Generator().manual_seed(0)
    rows = []
    for path in tqdm(args.data, desc="recordings", unit="recording"):
        acquisition = open_recording(path)
        reference = score_reference(acquisition, ground_truth(acquisition, device, cache=args.ground_truth_cache))
        plays = [("halton", *halton(model, acquisition, args.steps, args.rop_iterations)),
                 ("means", *play(model, acquisition, args.steps, None, 1, args.rop_iterations, generator)),
                 ("sigma", *play(model, acquisition, args.steps, sigma, args.samples, args.rop_iterations, generator)),
                 ("wide", *play(model, acquisition, args.steps, args.wide * sigma, args.samples, args.rop_iterations,
                                generator))]
        episodes_of = []
        for kind, batch, episodes in plays:
            quality, voronoi, error = training_rewards(batch, episodes)
            episodes_of += [(kind, q, v, e, i) for q, v, e, i in zip(quality, voronoi, error, episodes.indices)]
        finals = reconstruct_subsets(acquisition, [i for *_, i in episodes_of],
                                     RopSettings(iterations=args.final_iterations), device=device)
        headline = [reference.score(r.potential.real).r_true_material for r in finals]
        (_, base_q, base_v, base_e, _), base_h = episodes_of[0], headline[0]
        family = (acquisition.metadata.get("specimen") or {}).get("family")
        for (kind, q, v, e, _), h in zip(episodes_of, headline):
            rows.append({"recording": path.name, "family": family, "episode": kind, "quality": float(q),
                         "voronoi": float(v), "error": float(e), "headline": float(h), "quality_gap": float(q - base_q),
                         "voronoi_gap": float(v - base_v), "error_gap": float(e - base_e),
                         "headline_gap": float(h - base_h)})
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "reward_scatter.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "reward_scatter.png")


REWARD_LABELS = (("quality_gap", "quality reward (training's reconstruction)"),
                 ("voronoi_gap", "Voronoi return (paper)"), ("error_gap", "error-reduction return"))


def within_recordings(played: list[dict], x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of x and y after removing each recording's mean from both."""
    names = np.array([r["recording"] for r in played])
    dx, dy = x.copy(), y.copy()
    for name in set(names):
        chosen = names == name
        dx[chosen] -= x[chosen].mean()
        dy[chosen] -= y[chosen].mean()
    return float(pearsonr(dx, dy)[0])


def plot(rows: list[dict], path: Path) -> None:
    played = [r for r in rows if r["episode"] != "halton"]
    y = np.array([r["headline_gap"] for r in played])
    rewards = [(k, label) for k, label in REWARD_LABELS if k in played[0]]
    fig, axes = plt.subplots(1, len(rewards), figsize=(5 * len(rewards), 4.4), constrained_layout=True)
    families = sorted({r["family"] for r in played})
    colours = dict(zip(families, plt.cm.tab10.colors))
    for ax, (reward, label) in zip(axes, rewards):
        x = np.array([r[reward] for r in played])
        for family in families:
            chosen = [k for k, r in enumerate(played) if r["family"] == family]
            ax.scatter(x[chosen], y[chosen], s=14, color=colours[family], label=family)
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_xlabel(f"{label} − Halton's")
        ax.set_ylabel("headline r_true_material − Halton's")
        ax.set_title(f"Pearson {pearsonr(x, y)[0]:+.2f}, Spearman {spearmanr(x, y)[0]:+.2f} "
                     f"({len(x)} episodes);\nwithin recordings: Pearson {within_recordings(played, x, y):+.2f}",
                     fontsize=9)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    for reward, _ in rewards:
        x = np.array([r[reward] for r in played])
        print(f"{reward}: Pearson {pearsonr(x, y)[0]:+.3f}, Spearman {spearmanr(x, y)[0]:+.3f}, "
              f"within recordings {within_recordings(played, x, y):+.3f} ({len(x)} episodes)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
