"""Voronoi labels by the jump flooding algorithm (Rong & Tan 2006), batched, in torch.

Each pixel learns the nearest seed by looking at the seeds its neighbours know at
offsets k = N/2, N/4, …, 1, then two more passes at k = 2 and 1 ("JFA+2", which
removes most of JFA's rare errors). Distances are measured to the seeds' exact sub-pixel positions.
Runs on whatever device the tensors are on.
"""

from __future__ import annotations

import torch


def _shift(grid: torch.Tensor, dy: int, dx: int, fill: int) -> torch.Tensor:
    """grid[..., y + dy, x + dx] with ``fill`` outside (no wrap-around)."""
    out = torch.full_like(grid, fill)
    h, w = grid.shape[-2:]
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[..., yd, xd] = grid[..., ys, xs]
    return out


def voronoi_labels(seeds_px: torch.Tensor, shape: tuple[int, int], mask: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest seed for every pixel, (B, H, W) long.

    seeds_px: (B, P, 2) seed positions (y, x) in pixel units (pixel centres at integers);
    mask: (B, P) which seeds exist (default all). Seeds outside the grid still claim the
    pixels nearest to them. A data set without seeds gets −1 everywhere.
    """
    batch, count, _ = seeds_px.shape
    height, width = shape
    device = seeds_px.device
    mask = torch.ones(batch, count, dtype=torch.bool, device=device) if mask is None else mask
    labels = torch.full((batch, height, width), -1, dtype=torch.long, device=device)
    pixel = torch.round(seeds_px).long()
    pixel[..., 0].clamp_(0, height - 1)
    pixel[..., 1].clamp_(0, width - 1)
    b, p = torch.nonzero(mask, as_tuple=True)
    labels[b, pixel[b, p, 0], pixel[b, p, 1]] = p
    yy = torch.arange(height, device=device, dtype=seeds_px.dtype)[:, None]
    xx = torch.arange(width, device=device, dtype=seeds_px.dtype)[None, :]
    flat_seeds = seeds_px.reshape(batch, count, 2)

    def distance(candidate: torch.Tensor) -> torch.Tensor:
        safe = candidate.clamp_min(0)
        sy = torch.gather(flat_seeds[..., 0], 1, safe.reshape(batch, -1)).reshape(batch, height, width)
        sx = torch.gather(flat_seeds[..., 1], 1, safe.reshape(batch, -1)).reshape(batch, height, width)
        d = (sy - yy) ** 2 + (sx - xx) ** 2
        return torch.where(candidate >= 0, d, torch.full_like(d, float("inf")))

    steps = []
    k = max(height, width) // 2
    while k >= 1:
        steps.append(k)
        k //= 2
    best = distance(labels)
    for k in steps + [2, 1]:
        for dy in (-k, 0, k):
            for dx in (-k, 0, k):
                if dy == 0 and dx == 0:
                    continue
                candidate = _shift(labels, dy, dx, -1)
                d = distance(candidate)
                better = d < best
                labels = torch.where(better, candidate, labels)
                best = torch.where(better, d, best)
    return labels
