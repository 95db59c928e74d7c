"""Dose ratios read off synthetic dose–quality curves with known answers."""

import numpy as np
import pytest

from scan_server.errors import ParameterError
from scan_server.evaluation.dose import (AT_FIRST_COUNT, NOT_REACHED, REACHED, bootstrap_mean_interval, dose_ratio,
                                        positions_to_reach, score_at)

COUNTS = [60, 100, 150, 200, 250, 350]


def test_a_linear_curve_is_inverted_exactly():
    scores = [0.5 + 0.001 * c for c in COUNTS]  # score = 0.5 + 0.001 · positions
    crossing = positions_to_reach(COUNTS, scores, 0.675)
    assert crossing.positions == pytest.approx(175.0) and crossing.status == REACHED


def test_the_first_crossing_of_the_running_maximum_counts():
    scores = [0.1, 0.5, 0.3, 0.6, 0.55, 0.7]  # dips after reaching 0.5 do not un-reach it
    assert positions_to_reach(COUNTS, scores, 0.5).positions == pytest.approx(100.0)
    # 0.55 is crossed between 100 (running max 0.5) and 200 (0.6): 150 holds 0.5 as well
    assert positions_to_reach(COUNTS, scores, 0.55).positions == pytest.approx(175.0)


def test_targets_outside_the_curve_are_bounded_and_flagged():
    scores = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert positions_to_reach(COUNTS, scores, 0.1) == positions_to_reach(COUNTS, scores, 0.2)
    assert positions_to_reach(COUNTS, scores, 0.1).status == AT_FIRST_COUNT
    assert positions_to_reach(COUNTS, scores, 0.1).positions == 60
    assert positions_to_reach(COUNTS, scores, 0.9).status == NOT_REACHED
    assert positions_to_reach(COUNTS, scores, 0.9).positions == 350


def test_a_strategy_that_is_halton_shifted_by_a_factor_has_that_dose_ratio():
    """If strategy(n) = halton(n / f), it reaches Halton's quality at 250 with f · 250 positions
    (curves linear between the counts, so interpolation is exact; one recording per factor)."""
    counts = np.array(COUNTS, dtype=float)

    def halton(n):
        return 0.3 + 0.002 * n

    result = dose_ratio(COUNTS, [halton(counts / 0.7), halton(counts / 0.9)], [halton(counts)] * 2, 250)
    assert result["per_recording"] == pytest.approx([0.7, 0.9])
    assert result["mean"] == pytest.approx(0.8)
    assert result["status"] == [REACHED, REACHED] and result["not_reached"] == 0
    assert dose_ratio(COUNTS, [halton(counts)], [halton(counts)], 250)["mean"] == pytest.approx(1.0)
    # a strategy that needs more than the largest count is bounded below by it
    slow = dose_ratio(COUNTS, [halton(counts / 2)], [halton(counts)], 250)
    assert slow["per_recording"] == [350 / 250] and slow["not_reached"] == 1


def test_score_at_interpolates_and_refuses_to_extrapolate():
    assert score_at(COUNTS, [0, 1, 2, 3, 4, 5], 125) == pytest.approx(1.5)
    with pytest.raises(ParameterError, match="outside"):
        score_at(COUNTS, [0, 1, 2, 3, 4, 5], 400)
    with pytest.raises(ParameterError, match="two increasing counts"):
        positions_to_reach([100, 100], [0.1, 0.2], 0.15)


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_recordings():
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.7, 0.1, 4), rng.normal(0.7, 0.1, 64)
    for values in (few, many):
        low, high = bootstrap_mean_interval(values)
        assert low <= values.mean() <= high
    assert np.ptp(bootstrap_mean_interval(many)) < np.ptp(bootstrap_mean_interval(few))
    assert bootstrap_mean_interval([0.8]) == [0.8, 0.8]
