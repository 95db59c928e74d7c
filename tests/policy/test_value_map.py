import numpy as np
import torch
from torch import nn

from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.policy.strategy import learned_strategy
from scan_server.policy.value_map import ValueMapNet, ValueMapScan, ValueMapSettings
from scan_server.scanning.baselines import halton_unit
from scan_server.scanning.evidence import CHANNELS
from scan_server.scanning.state import ScanState

EXTENT = (20.0, 20.0)
SETTINGS = ValueMapSettings(map_px=32)


class ConstantValue(nn.Module):
    """A value map that says nothing: the same value everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, evidence: torch.Tensor) -> torch.Tensor:
        return torch.ones(evidence.shape[0], *evidence.shape[-2:]) + 0 * self.anchor


class MaterialValue(ConstantValue):
    """A value map that believes the relative dark field: 10^(log10 DF − material reference)."""

    def forward(self, evidence: torch.Tensor) -> torch.Tensor:
        return 10 ** evidence[:, CHANNELS.index("dark_field_relative_1A")]


def _play(strategy: ValueMapScan, dark_field_at, steps: int = 4, n: int = 50) -> np.ndarray:
    acquired = np.empty((0, 2))
    for step in range(steps):
        state = ScanState(acquired, None, step, dark_field_fraction=dark_field_at(acquired), extent_angstrom=EXTENT)
        acquired = np.concatenate([acquired, strategy.next_positions(state, n)])
    return acquired


def test_on_a_flat_field_it_continues_the_halton_sequence():
    rng = np.random.default_rng(0)
    for network in (ConstantValue(), MaterialValue()):  # whatever the map says
        strategy = ValueMapScan(network, SETTINGS, seed=4)
        scan = _play(strategy, lambda p: rng.uniform(0.004, 0.05, len(p)))  # a film's spread of dark field
        np.testing.assert_array_equal(scan, halton_unit(200, 4))


def test_a_field_with_vacuum_spends_the_dose_on_the_material():
    strategy = ValueMapScan(MaterialValue(), SETTINGS, seed=4)
    scan = _play(strategy, lambda p: np.where(p[:, 1] < 0.4, 3e-4, 1e-2), steps=5)
    first, later = scan[:50], scan[50:]
    assert 0.3 < np.mean(first[:, 1] < 0.4) < 0.5  # the Halton start sees both
    assert np.mean(later[:, 1] < 0.35) < 0.02       # then the vacuum is skipped
    assert len(np.unique(scan, axis=0)) == len(scan)


def test_a_resumed_session_decides_as_the_uninterrupted_one():
    dark_field = lambda p: np.where(p[:, 0] < 0.5, 3e-4, 1e-2)  # noqa: E731
    whole = ValueMapScan(MaterialValue(), SETTINGS, seed=1)
    scan = _play(whole, dark_field, steps=3)
    resumed = ValueMapScan(MaterialValue(), SETTINGS, seed=1)
    first = ValueMapScan(MaterialValue(), SETTINGS, seed=1)
    _play(first, dark_field, steps=2)
    resumed.restore_policy_state(first.policy_state())
    state = ScanState(scan[:100], None, 2, dark_field_fraction=dark_field(scan[:100]), extent_angstrom=EXTENT)
    np.testing.assert_array_equal(resumed.next_positions(state, 50), scan[100:])


def test_a_model_with_a_value_map_serves_it():
    settings = ModelSettings.from_preset("tiny")
    assert AdaptiveModel(settings).strategies == ("adaptive",)
    model = AdaptiveModel(ModelSettings(settings.preset, settings.encoder, settings.policy, SETTINGS))
    assert model.strategies == ("adaptive", "value-map")
    assert isinstance(learned_strategy(model, "value-map"), ValueMapScan)
    assert ModelSettings.from_dict(model.settings.as_dict()) == model.settings
    assert isinstance(ValueMapNet(SETTINGS)(torch.zeros(2, len(CHANNELS), 32, 32)), torch.Tensor)


def test_the_value_map_draws_from_the_session_s_halton_sequence_and_adaptive_from_its_model_s():
    """Paired seeds: the value map built for seed s starts with (and, on flat evidence, is) the
    Halton scan of seed s, the baseline it is compared with; the adaptive policy keeps its
    model's sequence."""
    from functools import partial

    from scan_server.scanning.registry import StrategyContext, build_strategy

    tiny = ModelSettings.from_preset("tiny")
    model = AdaptiveModel(ModelSettings(tiny.preset, tiny.encoder, tiny.policy, SETTINGS))
    empty = ScanState(np.empty((0, 2)), None, 0)
    for seed in (0, 7):
        context = StrategyContext(100, seed, learned=partial(learned_strategy, model))
        assert build_strategy("value-map", context).seed == seed
        np.testing.assert_array_equal(build_strategy("value-map", context).next_positions(empty, 10),
                                      build_strategy("halton", context).next_positions(empty, 10))
        assert build_strategy("adaptive", context).seed == model.settings.policy.halton_seed
