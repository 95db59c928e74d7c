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
"""

from __future__ import annotations

import torch

from .voronoi import voronoi_labels

REWARDS = ("voronoi", "shared", "error")


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
        raise ValueError(f"unknown reward {kind!r}: choose one of {', '.join(REWARDS)}")
    return torch.where(mask, cell_sums(values, positions_px, mask, refine) / count, torch.zeros_like(count))
