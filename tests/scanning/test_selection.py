import numpy as np
import pytest
from scipy.spatial.distance import pdist

from scan_server.errors import ParameterError
from scan_server.scanning.baselines import halton_unit
from scan_server.scanning.selection import SelectionSettings, greedy_select, evidence_is_flat, select

EXTENT = (20.0, 20.0)
SETTINGS = SelectionSettings(min_spacing_angstrom=0.6)


def test_greedy_picks_exactly_n_distinct_candidates_spaced_apart():
    candidates = halton_unit(400, 3)
    values = np.random.default_rng(0).random(400)
    picked = greedy_select(candidates, values, halton_unit(50, 3), 100, EXTENT, 0.6)
    assert len(picked) == 100 and len(set(picked.tolist())) == 100
    chosen = candidates[picked] * EXTENT
    assert pdist(chosen).min() >= 0.6


def test_without_room_for_the_spacing_it_still_picks_n():
    candidates = np.full((10, 2), 0.5) + 1e-4 * np.arange(10)[:, None]  # all within 0.03 Å
    picked = greedy_select(candidates, np.ones(10), np.empty((0, 2)), 10, EXTENT, 0.6)
    assert sorted(picked.tolist()) == list(range(10))
    with pytest.raises(ParameterError):
        greedy_select(candidates, np.ones(10), np.empty((0, 2)), 11, EXTENT, 0.6)


def test_no_value_is_spent_where_the_map_is_zero_while_valued_candidates_remain():
    """A known answer: value 0 on the left half (vacuum), 1 on the right."""
    candidates = halton_unit(200, 5)
    values = (candidates[:, 1] > 0.5).astype(float)
    picked = greedy_select(candidates, values, halton_unit(20, 5), 60, EXTENT, 0.6)
    assert (candidates[picked, 1] > 0.5).all()


def test_the_coverage_term_spreads_uniform_values():
    candidates = halton_unit(800, 1)
    picked = greedy_select(candidates, np.ones(800), np.empty((0, 2)), 100, EXTENT, 0.0)
    chosen = candidates[picked] * EXTENT
    nearest = np.sort(np.linalg.norm(chosen[:, None] - chosen[None], axis=-1), axis=1)[:, 1]
    # 100 points in 400 Å²: a uniform grid's spacing is 2 Å; farthest-point picks stay well spread
    assert nearest.min() > 1.0


def test_without_vacuum_in_sight_it_continues_the_candidates_in_order_whatever_the_values():
    """Do no harm: a session without a vacuum level (a film) keeps the Halton continuation; with
    one, the candidates must reach halfway to it (the session's scale: 0 material, −1 vacuum)."""
    rng = np.random.default_rng(3)
    candidates = halton_unit(200, 2)
    film = rng.uniform(-0.3, 0.3, 200)
    values = rng.random(200)                       # however the learned value varies
    holes = np.where(candidates[:, 0] < 0.3, -1.0, film)  # a third of the field at the vacuum level
    assert evidence_is_flat(holes, False, SETTINGS)        # no vacuum level: flat whatever the map says
    assert evidence_is_flat(film, True, SETTINGS)          # a vacuum level, but not near these candidates
    picked, was_flat = select(candidates, values, film, True, halton_unit(50, 2), 50, EXTENT, SETTINGS)
    assert was_flat and picked.tolist() == list(range(50))
    assert not evidence_is_flat(holes, True, SETTINGS)
    picked, was_flat = select(candidates, values, holes, True, halton_unit(50, 2), 50, EXTENT, SETTINGS)
    assert not was_flat and len(set(picked.tolist())) == 50
