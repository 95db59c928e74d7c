import pytest
import torch

from scan_server.training.rewards import position_rewards


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
