"""Does a score without a truth tell what the truth tells? Checked wherever a truth exists.

Real experiments have no true phase, so the dose ratios reported on them come from a score
against the full-data reconstruction. Such a score can point the wrong way (on independently
simulated fields with vacuum, SSIM over the material said the GRU saves less dose or costs
more where the truth said it saves 13–38 %: ``docs/adaptivity.md`` §5). So on every
evaluation whose recordings carry a truth, each truth-free score's dose ratios are computed
too and compared with the truth's:

* ``mean_ratio_difference``: per strategy, its mean dose ratio by the score − by the truth;
* ``ranking_agreement``: the fraction of recordings on which the score orders every pair of
  strategies (Halton at 1 included) as the truth does; a pair whose true ratios differ by
  less than ``TIE`` is a tie and any order agrees with it (interpolated crossings between
  sparse counts are not finer than that), but a score that calls a true difference a tie
  does not agree (it would miss a saving);
* ``pair_agreement``: the fraction of all (recording, pair) cases that agree.

The truth-free headline (``scores.HEADLINE_WITHOUT_TRUTH``) is the score that agrees best
(docs/evaluation.md, "Scores without a truth", has the measurements).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

#: dose ratios closer than this are a tie (sparse counts, linear interpolation)
TIE = 0.05


def _orders_agree(truth: dict[str, float], other: dict[str, float]) -> list[bool]:
    """For each pair of strategies: whether ``other`` orders it as ``truth`` does (a true tie agrees)."""
    agree = []
    for a, b in combinations(sorted(truth), 2):
        t, o = truth[a] - truth[b], other[a] - other[b]
        agree.append(abs(t) < TIE or (abs(o) >= TIE and (t > 0) == (o > 0)))
    return agree


def score_agreement(truth_ratios: dict, other_ratios: dict) -> dict:
    """Agreement of one score's ``dose_ratio_vs_halton`` (strategy → {"per_recording": […], "mean": …})
    with the truth's (module docstring)."""
    strategies = [s for s in truth_ratios if s in other_ratios]
    if not strategies:
        return {}
    count = len(truth_ratios[strategies[0]]["per_recording"])
    whole, pairs = [], []
    for i in range(count):
        truth = {"halton": 1.0, **{s: truth_ratios[s]["per_recording"][i] for s in strategies}}
        other = {"halton": 1.0, **{s: other_ratios[s]["per_recording"][i] for s in strategies}}
        agree = _orders_agree(truth, other)
        whole.append(all(agree))
        pairs += agree
    return {"mean_ratio_difference": {s: float(other_ratios[s]["mean"] - truth_ratios[s]["mean"]) for s in strategies},
            "max_abs_mean_ratio_difference": float(max(abs(other_ratios[s]["mean"] - truth_ratios[s]["mean"])
                                                       for s in strategies)),
            "ranking_agreement": float(np.mean(whole)), "pair_agreement": float(np.mean(pairs)),
            "recordings": count}
