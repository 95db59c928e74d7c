import pytest
import torch

from scan_server.evaluation.metrics import pearson
from scan_server.training.reinforce import advantages, leave_one_out_mean
from scan_server.training.rewards import material_pearson, position_rewards, quality_returns


@pytest.fixture
def episode():
    generator = torch.Generator().manual_seed(0)
    phase = torch.rand((2, 30, 34), generator=generator, dtype=torch.float64)
    positions = torch.rand((2, 25, 2), generator=generator, dtype=torch.float64) * torch.tensor([29.0, 33.0])
    mask = torch.ones(2, 25, dtype=torch.bool)
    mask[1, 18:] = False
    return phase, positions, mask


@pytest.mark.parametrize("kind", ["voronoi", "shared"])
def test_rewards_sum_to_the_total_phase_divided_by_p(episode, kind):
    phase, positions, mask = episode
    rewards = position_rewards(phase, positions, mask, kind)
    count = mask.sum(dim=1).double()
    if kind == "voronoi":
        torch.testing.assert_close(rewards.sum(dim=1), phase.sum(dim=(-2, -1)) / count)
    else:
        torch.testing.assert_close(rewards[:, 0], phase.sum(dim=(-2, -1)) / count)
    assert torch.all(rewards[1, 18:] == 0)


def test_a_position_on_a_bright_spot_earns_more(episode):
    _, positions, mask = episode
    phase = torch.zeros(2, 30, 34, dtype=torch.float64)
    y, x = positions[0, 3].round().long().tolist()
    phase[0, y, x] = 1.0
    rewards = position_rewards(phase, positions, mask)
    assert int(rewards[0].argmax()) == 3


def test_error_reward_is_the_reduction_of_squared_error(episode):
    phase, positions, mask = episode
    truth = phase.clone()
    perfect = position_rewards(phase, positions, mask, "error", truth=truth)
    empty = position_rewards(torch.zeros_like(phase), positions, mask, "error", truth=truth)
    torch.testing.assert_close(perfect.sum(dim=1), (truth**2).sum(dim=(-2, -1)) / mask.sum(dim=1).double())
    assert torch.allclose(empty, torch.zeros_like(empty))


def test_material_pearson_is_numpy_s_pearson_over_the_mask():
    generator = torch.Generator().manual_seed(4)
    phases = torch.rand((2, 3, 20, 24), generator=generator, dtype=torch.float64)
    truth = torch.rand((2, 20, 24), generator=generator, dtype=torch.float64)
    material = torch.rand((2, 20, 24), generator=generator) > 0.4
    phases[1, 2] = 0.5 * truth[1] + 3.0  # a scaled, offset copy of the truth: r = 1
    scores = material_pearson(phases, truth, material)
    for b in range(2):
        for k in range(3):
            m = material[b].numpy()
            assert scores[b, k].item() == pytest.approx(pearson(phases[b, k].numpy()[m], truth[b].numpy()[m]),
                                                        abs=1e-12)
    assert scores[1, 2].item() == pytest.approx(1.0)


def test_a_constant_phase_scores_zero():
    truth = torch.rand((1, 10, 10), dtype=torch.float64)
    scores = material_pearson(torch.full((1, 1, 10, 10), 0.3, dtype=torch.float64), truth,
                              torch.ones(1, 10, 10, dtype=torch.bool))
    assert scores.item() == 0.0


def test_quality_returns_credit_each_action_with_the_gain_after_it():
    scores = torch.tensor([[0.1, 0.3, 0.35, 0.6]])
    torch.testing.assert_close(quality_returns(scores), torch.tensor([[0.5, 0.3, 0.25]]))


def test_the_halton_baseline_cancels_a_specimen_s_difficulty():
    """Two specimens, one easy (large returns), one hard: against each one's own Halton
    returns only what the policy did better or worse remains."""
    halton = torch.tensor([[0.50, 0.30], [0.05, 0.02]])
    better = torch.tensor([[0.02, 0.01], [-0.01, 0.0]])
    result = advantages(halton + better, "halton", halton)
    torch.testing.assert_close(result, better)
    batch_mean = advantages(halton + better, "batch")
    assert batch_mean[0, 0] > 0.2 and batch_mean[1, 0] < -0.2  # the batch mean keeps the specimens' spread


def test_normalised_advantages_have_zero_mean_and_unit_spread():
    returns = torch.tensor([[3.0, 1.0], [5.0, -2.0], [0.5, 0.0]])
    result = advantages(returns, "none", normalise=True)
    assert result.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert result.std().item() == pytest.approx(1.0)
    assert torch.equal(result.argsort(dim=0), returns.argsort(dim=0))


def test_leave_one_out_mean_is_the_mean_of_the_other_episodes_on_the_same_specimen():
    returns = torch.tensor([[1.0], [2.0], [6.0], [10.0], [20.0], [30.0]])  # two specimens, three episodes each
    torch.testing.assert_close(leave_one_out_mean(returns, 3),
                               torch.tensor([[4.0], [3.5], [1.5], [25.0], [20.0], [15.0]]))


def test_the_specimen_baseline_leaves_only_what_the_episode_did_differently():
    """Specimen levels 0.9 and 0.2 (the policy's means already differ by specimen); within a
    specimen the episodes differ by ±0.01: only that sign is left."""
    levels = torch.tensor([0.9, 0.9, 0.2, 0.2])[:, None]
    deviations = torch.tensor([0.01, -0.01, -0.01, 0.01])[:, None]
    result = advantages(levels + deviations, "specimen", group=2)
    torch.testing.assert_close(result, 2 * deviations)
    with pytest.raises(ValueError):
        advantages(levels, "specimen", group=1)
