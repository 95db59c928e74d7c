"""Per-position rewards for REINFORCE (paper §II.D).

All rewards are computed over the scanned field of view of the final reconstruction,
on a grid ``refine`` times finer than the reconstruction's (each fine pixel carries
1/refine² of its coarse pixel's value), so that recorded positions closer than a
reconstruction pixel still get cells of their own.

* ``voronoi`` (the paper's): r_m = Σ_{r ∈ cell m} V(r) / P, the phase summed over the
  Voronoi cell of position m (cells by jump flooding), divided by the number of positions.
* ``shared`` (Fig. 3a's failing variant): every position gets Σ_FOV V(r) / P.
* ``error`` (needs the ground truth of simulated data): the per-cell reduction of the
  squared error against the truth relative to an empty reconstruction,
  r_m = Σ_{cell m} [T(r)² − (V(r) − T(r))²] / P, a true difference reward.

One reward is per sub-sequence, not per position:

* ``quality`` (needs the ground truth): the yardstick's headline score (``r_true_material``,
  the Pearson r of the phase with the true phase over the material) of the reconstruction
  after each sub-sequence, q_1 … q_T. The action that chooses sub-sequence t + 1 is
  credited with what it and the later ones add: q_T − q_t (``quality_returns``). The
  material mask is taken from the true phase (``material_mask`` of the evaluation; the
  evaluation takes it from the full-data reconstruction, which training does not make).
"""

from __future__ import annotations

import torch

from .settings import POSITION_REWARDS
from .voronoi import voronoi_labels


def _refine(image: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, H, W) → (B, fH, fW), each coarse value spread evenly over its fine pixels."""
    return image.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1) / factor**2


def cell_sums(values: torch.Tensor, positions_px: torch.Tensor, mask: torch.Tensor, refine: int = 4) -> torch.Tensor:
    """Σ of ``values`` (B, H, W) over each position's Voronoi cell → (B, P).

    positions_px: (B, P, 2) in the pixel coordinates of ``values`` (centres at integers)."""
    fine = _refine(values, refine)
    seeds = (positions_px + 0.5) * refine - 0.5
    labels = voronoi_labels(seeds, tuple(fine.shape[-2:]), mask)
    batch, count = mask.shape
    sums = torch.zeros(batch, count, dtype=values.dtype, device=values.device)
    valid = labels >= 0
    b = torch.arange(batch, device=values.device)[:, None, None].expand_as(labels)
    sums.index_put_((b[valid], labels[valid]), fine[valid], accumulate=True)
    return sums


def position_rewards(phase: torch.Tensor, positions_px: torch.Tensor, mask: torch.Tensor, kind: str = "voronoi",
                     truth: torch.Tensor | None = None, refine: int = 4) -> torch.Tensor:
    """Rewards (B, P) of each data set's positions; masked positions get 0.

    phase: (B, H, W) real part of the final reconstruction over the field of view;
    truth: (B, H, W) the true phase on the same grid (``kind='error'`` only)."""
    count = mask.sum(dim=1, keepdim=True).clamp_min(1).to(phase.dtype)
    if kind == "shared":
        total = phase.sum(dim=(-2, -1))[:, None] / count
        return torch.where(mask, total.expand_as(mask.to(phase.dtype)), torch.zeros_like(total))
    if kind == "voronoi":
        values = phase
    elif kind == "error":
        if truth is None:
            raise ValueError("the error-reduction reward needs the ground truth")
        values = truth**2 - (phase - truth) ** 2
    else:
        raise ValueError(f"unknown per-position reward {kind!r}: choose one of {', '.join(POSITION_REWARDS)}")
    return torch.where(mask, cell_sums(values, positions_px, mask, refine) / count, torch.zeros_like(count))


def material_pearson(phases: torch.Tensor, truth: torch.Tensor, material: torch.Tensor) -> torch.Tensor:
    """Pearson r of each phase with the truth over the material (the headline
    ``r_true_material``): phases (B, K, h, w), truth (B, h, w), material (B, h, w) bool → (B, K).
    A constant phase (e.g. nothing reconstructed yet) scores 0."""
    weights = material.to(torch.float64)[:, None]
    count = weights.sum(dim=(-2, -1), keepdim=True)
    a = phases.to(torch.float64)
    b = truth.to(torch.float64)[:, None]
    a = (a - (a * weights).sum(dim=(-2, -1), keepdim=True) / count) * weights
    b = (b - (b * weights).sum(dim=(-2, -1), keepdim=True) / count) * weights
    covariance = (a * b).sum(dim=(-2, -1))
    norm = (a.square().sum(dim=(-2, -1)) * b.square().sum(dim=(-2, -1))).sqrt()
    return torch.where(norm > 0, covariance / norm.clamp_min(1e-300), torch.zeros_like(norm))


def quality_returns(scores: torch.Tensor) -> torch.Tensor:
    """Returns (B, T − 1) of the actions that chose sub-sequences 2 … T from the scores
    (B, T) after each sub-sequence: q_T − q_t (γ = 1 over the differences q_{k} − q_{k−1})."""
    return scores[:, -1:] - scores[:, :-1]

