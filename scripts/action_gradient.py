"""Is there a direction to learn, state by state? (issue 13, REINFORCE diagnostics)

On each recording, from the policy's own state after the Halton start (the first decision),
``--samples`` mirrored Gaussian deviations ε of the policy's 50 next positions (σ of the
policy) are played; each gets the ``quality`` reward's gain of that sub-sequence (the
headline r after sub-sequence 2, training reconstruction, material from the truth). Then:

* split-half cosine: the REINFORCE estimates ĝ = mean((q − q̄) ε) from the two halves of the
  samples, compared (1: the same direction; 0: noise);
* the means moved along ĝ (the whole sample's) by c σ RMS per position, c in ``--steps``, and
  by random directions of 1 σ RMS, each played and scored: what a step along the estimate
  gains, against what an uninformed step of the same size does.

    .venv/bin/python scripts/action_gradient.py --model runs/v2/imitate --data data/v2-validation/*.h5 \\
        --samples 200 --out docs/results/reinforce/action_gradient.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from scan_server.io.open import open_recording
from scan_server.policy.model_folder import ModelFolder
from scan_server.rollout import EpisodeBatch, rollout
from scan_server.training.reinforce import headline_scores

CHUNK = 20


def play(model, acquisition, count: int, score_iterations: int | None = None, **options) -> tuple[np.ndarray, object]:
    """``count`` episodes of two sub-sequences on one recording and their scores after the second
    (that reconstruction from scratch with ``score_iterations`` when given, as ``train rl
    --score-iterations`` scores it; the policy sees the in-loop one)."""
    batch = EpisodeBatch.over([acquisition] * count)
    episodes = rollout(batch, model, 2, [model.settings.policy.halton_seed] * count, iterations=5, keep_phases=True,
                       final_iterations=score_iterations, **options)
    return headline_scores(batch, episodes.phases[:, -1:])[:, 0].numpy(), episodes


def estimate(scores: np.ndarray, deviations: np.ndarray) -> np.ndarray:
    """REINFORCE's estimate of the gradient of the score with respect to the means, (n, 2)."""
    return ((scores - scores.mean())[:, None, None] * deviations).mean(axis=0)


def parameter_pull(model, episodes, direction: np.ndarray) -> torch.Tensor:
    """J^T v: the GRU parameters' gradient of ⟨means of the first decision, v⟩ for an action-space
    direction v (n, 2) — REINFORCE's parameter-space estimate when v is its action-space one."""
    model.zero_grad()
    with torch.enable_grad():
        means, _ = model(episodes.inputs_positions[:1, :1], episodes.latents[:1, :1])
        (means[0, 0] * torch.as_tensor(direction, dtype=means.dtype)).sum().backward()
    return torch.cat([p.grad.flatten() for p in model.policy.parameters() if p.grad is not None]).clone()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / a.norm() / b.norm())


def transfer(pulls: list[dict]) -> dict:
    """Do the states' directions agree in parameter space? The first half's estimate of one state
    against the second half's of the same state (within) and of every other state (across); the
    same for random action-space directions (what J's own shared structure gives, the null)."""
    n = len(pulls)
    within = [cosine(p["half1"], p["half2"]) for p in pulls]
    across = [cosine(pulls[a]["half1"], pulls[b]["half2"]) for a in range(n) for b in range(n) if a != b]
    null = [cosine(pulls[a]["random1"], pulls[b]["random2"]) for a in range(n) for b in range(n) if a != b]
    return {"within_state": float(np.mean(within)), "across_states": float(np.mean(across)),
            "across_states_se": float(np.std(across, ddof=1) / np.sqrt(len(across))),
            "random_directions_across": float(np.mean(null)),
            "random_directions_across_se": float(np.std(null, ddof=1) / np.sqrt(len(null)))}


def examine(model, acquisition, samples: int, steps: list[float], generator: torch.Generator,
            score_iterations: int | None = None, pulls: list | None = None) -> dict:
    """One recording's row; with ``pulls``, appends the state's parameter-space estimates (each
    half's, and of two random action-space directions) for ``transfer``."""
    sigma = model.settings.policy.sigma
    scores, deviations = [], []
    for _ in range(samples // CHUNK):
        s, episodes = play(model, acquisition, CHUNK, score_iterations, sample=True, generator=generator, mirrored=True)
        scores.append(s)
        deviations.append(((episodes.actions - episodes.means)[:, 0] / sigma).numpy())
    means = episodes.means[0, 0]
    q, e = np.concatenate(scores), np.concatenate(deviations)
    half = len(q) // 2
    g1, g2, g = estimate(q[:half], e[:half]), estimate(q[half:], e[half:]), estimate(q, e)
    cosine = float((g1 * g2).sum() / np.linalg.norm(g1) / np.linalg.norm(g2))
    unit = torch.as_tensor(g / np.sqrt((g**2).sum(axis=-1).mean()), dtype=means.dtype)
    randoms = torch.randn(4, *means.shape, generator=generator)
    randoms = randoms / randoms.norm(dim=-1).square().mean(dim=-1).sqrt()[:, None, None]
    targets = torch.cat([torch.stack([means + c * sigma * unit for c in [0.0, *steps]]), means + sigma * randoms])
    if pulls is not None:
        random = torch.randn(2, *means.shape, generator=generator).numpy()
        pulls.append({"half1": parameter_pull(model, episodes, g1), "half2": parameter_pull(model, episodes, g2),
                      "random1": parameter_pull(model, episodes, random[0]),
                      "random2": parameter_pull(model, episodes, random[1])})
    moved, _ = play(model, acquisition, len(targets), score_iterations, teacher=lambda t, states: targets)
    base = moved[0]
    return {"sampled_mean": float(q.mean()) - base, "split_half_cosine": cosine,
            **{f"along_{c:g}_sigma": float(v - base) for c, v in zip(steps, moved[1:1 + len(steps)])},
            "random_1_sigma_mean": float(np.mean(moved[1 + len(steps):] - base)),
            "random_1_sigma_sd": float(np.std(moved[1 + len(steps):] - base, ddof=1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=200, help="mirrored deviations per recording (× 20)")
    parser.add_argument("--steps", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--score-iterations", type=int,
                        help="ROP iterations from scratch of the scored reconstruction (default: the in-loop 5)")
    parser.add_argument("--transfer", action="store_true",
                        help="also compare the states' estimates in the GRU's parameter space (OUT_transfer.csv)")
    parser.add_argument("--out", type=Path, required=True, help="CSV")
    args = parser.parse_args()
    model, _ = ModelFolder(args.model).load(torch.device("cpu"), verify=False)
    generator = torch.Generator().manual_seed(args.seed)
    rows, pulls = [], [] if args.transfer else None
    for path in tqdm(args.data, desc="recordings"):
        rows.append({"recording": path.stem, **examine(model, open_recording(path), args.samples, args.steps,
                                                        generator, args.score_iterations, pulls)})
        tqdm.write(", ".join(f"{k} {v:+.4f}" if isinstance(v, float) else str(v) for k, v in rows[-1].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    keys = [k for k in rows[0] if k != "recording"]
    print("mean over recordings: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):+.4f}" for k in keys))
    if pulls:
        agreement = transfer(pulls)
        with open(args.out.with_name(args.out.stem + "_transfer.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(agreement))
            writer.writeheader()
            writer.writerow(agreement)
        print("parameter space: " + ", ".join(f"{k} {v:+.4f}" for k, v in agreement.items()))


if __name__ == "__main__":
    main()
