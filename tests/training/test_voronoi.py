import numpy as np
import torch
from scipy.spatial import cKDTree

from scan_server.training.voronoi import voronoi_labels


def _check_against_brute_force(seeds, mask, shape, exact_fraction):
    labels = voronoi_labels(torch.as_tensor(seeds), shape, torch.as_tensor(mask)).numpy()
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    pixels = np.stack([yy.ravel(), xx.ravel()], axis=1)
    for b in range(len(seeds)):
        valid = np.flatnonzero(mask[b])
        distance, nearest = cKDTree(seeds[b, valid]).query(pixels)
        ours = labels[b].ravel()
        assert set(np.unique(ours)) <= set(valid)
        assigned = np.linalg.norm(seeds[b, ours] - pixels, axis=1)
        # ties, and seeds sharing a pixel: never more than one pixel farther than the nearest seed
        assert np.all(assigned <= distance + 1.0)
        assert np.mean(valid[nearest] == ours) >= exact_fraction


def test_jump_flooding_equals_brute_force_for_separated_seeds():
    """Seeds at least 2 px apart (jittered grid): every pixel gets the nearest seed."""
    rng = np.random.default_rng(1)
    shape = (61, 67)
    gy, gx = np.meshgrid(np.arange(2, 60, 4.0), np.arange(2, 66, 4.0), indexing="ij")
    grid = np.stack([gy.ravel(), gx.ravel()], axis=1)
    seeds = np.stack([grid + rng.uniform(-1, 1, grid.shape) for _ in range(3)])
    mask = np.ones(seeds.shape[:2], dtype=bool)
    mask[2, 100:] = False
    _check_against_brute_force(seeds, mask, shape, exact_fraction=0.999)


def test_jump_flooding_is_within_one_pixel_for_random_seeds():
    rng = np.random.default_rng(0)
    shape = (61, 67)
    seeds = rng.uniform([-2, -2], [shape[0] + 1, shape[1] + 1], (3, 120, 2))
    mask = np.ones((3, 120), dtype=bool)
    mask[1, 80:] = False  # ragged: data set 1 has 80 seeds
    _check_against_brute_force(seeds, mask, shape, exact_fraction=0.98)


def test_no_seeds_gives_minus_one():
    labels = voronoi_labels(torch.zeros(1, 3, 2), (5, 5), torch.zeros(1, 3, dtype=torch.bool))
    assert torch.all(labels == -1)
