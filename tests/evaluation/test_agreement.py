from scan_server.evaluation.agreement import TIE, score_agreement


def _ratios(per_recording: dict[str, list[float]]) -> dict:
    return {s: {"per_recording": v, "mean": sum(v) / len(v)} for s, v in per_recording.items()}


def test_a_score_that_ranks_as_the_truth_agrees_fully_even_with_an_offset():
    truth = _ratios({"adaptive": [0.8, 1.2, 0.7], "random": [1.3, 1.4, 1.2]})
    shifted = _ratios({"adaptive": [0.75, 1.25, 0.72], "random": [1.5, 1.6, 1.3]})
    agreement = score_agreement(truth, shifted)
    assert agreement["ranking_agreement"] == 1.0 and agreement["pair_agreement"] == 1.0
    assert abs(agreement["mean_ratio_difference"]["random"] - 0.1667) < 1e-3
    assert abs(agreement["max_abs_mean_ratio_difference"] - 0.1667) < 1e-3


def test_a_score_that_says_a_saving_is_a_cost_disagrees_on_that_recording():
    """The defect of the issue: truth 0.62× (saves), the truth-free score 1.33× (costs)."""
    truth = _ratios({"adaptive": [0.62, 0.87], "random": [1.3, 1.3]})
    wrong = _ratios({"adaptive": [1.33, 0.87], "random": [1.3, 1.3]})
    agreement = score_agreement(truth, wrong)
    assert agreement["ranking_agreement"] == 0.5
    # on the first: adaptive–halton reversed, adaptive–random (truth −0.68) seen as a tie (0.03); the rest agree
    assert agreement["pair_agreement"] == 4 / 6


def test_a_true_tie_agrees_with_any_order_but_a_missed_saving_does_not():
    truth = _ratios({"adaptive": [1.0 + TIE / 2]})
    other = _ratios({"adaptive": [1.0 - TIE / 2]})
    assert score_agreement(truth, other)["ranking_agreement"] == 1.0
    assert score_agreement(truth, _ratios({"other": [0.5]})) == {}
    saving, blind = _ratios({"adaptive": [0.62]}), _ratios({"adaptive": [1.0 + TIE / 2]})
    assert score_agreement(saving, blind)["ranking_agreement"] == 0.0  # the score saw no saving where there was one
