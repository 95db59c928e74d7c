import numpy as np
import pytest
from scipy.stats import qmc

from scan_server.contracts import RasterScan
from scan_server.errors import ParameterError
from scan_server.scanning.acquire import select_positions
from scan_server.scanning.baselines import halton_unit, sparse_raster_unit

RECORDED = RasterScan((100, 100), 0.2).positions_angstrom()


@pytest.mark.parametrize("strategy", ["raster", "random", "halton"])
@pytest.mark.parametrize("n", [1, 50, 250, 500])
def test_every_strategy_gives_exactly_n_distinct_recorded_positions(strategy, n):
    indices = select_positions(strategy, n, RECORDED, seed=3)
    assert len(indices) == n
    assert len(np.unique(indices)) == n
    assert indices.min() >= 0 and indices.max() < len(RECORDED)


def test_halton_is_scipys_sequence():
    np.testing.assert_array_equal(halton_unit(64, 9), qmc.Halton(d=2, scramble=True, seed=9).random(64))


def test_sparse_raster_is_uniform():
    points = sparse_raster_unit(250)
    assert len(points) == 250 and len(np.unique(points, axis=0)) == 250
    rows = np.unique(points[:, 0])
    assert len(rows) == 16
    counts = [int((points[:, 0] == r).sum()) for r in rows]
    assert max(counts) - min(counts) <= 1


def test_bad_requests_are_refused():
    with pytest.raises(ParameterError, match="1…10000"):
        select_positions("random", 0, RECORDED)
    with pytest.raises(ParameterError, match="unknown strategy"):
        select_positions("spiral", 10, RECORDED)


def test_strategies_serve_sub_sequences_through_one_interface():
    from scan_server.scanning.registry import StrategyContext, build_strategy
    from scan_server.scanning.state import ScanState

    def make_strategy(name, total, seed=0, scan_shape=None):
        return build_strategy(name, StrategyContext(total, seed, scan_shape))

    halton = make_strategy("halton", 250, seed=4)
    first = halton.next_positions(ScanState(np.empty((0, 2)), None, 0), 50)
    second = halton.next_positions(ScanState(first, None, 1), 50)
    np.testing.assert_allclose(np.concatenate([first, second]), halton_unit(100, 4))
    full = make_strategy("full", 12, scan_shape=(3, 4))
    points = full.next_positions(ScanState(np.empty((0, 2)), None, 0), 12)
    assert points.min() == 0 and points.max() == 1 and len(np.unique(points, axis=0)) == 12
    for name in ("random", "raster"):
        proposal = make_strategy(name, 60, seed=1).next_positions(ScanState(np.empty((0, 2)), None, 0), 50)
        assert proposal.shape == (50, 2) and proposal.min() >= 0 and proposal.max() <= 1


def test_full_raster_selects_every_recorded_position():
    indices = select_positions("full", len(RECORDED), RECORDED, scan_shape=(100, 100))
    assert sorted(indices) == list(range(len(RECORDED)))


def test_the_registry_names_each_strategy_once_and_says_what_it_is():
    from scan_server.scanning.registry import (
        BASELINE_STRATEGIES,
        REFERENCE_STRATEGIES,
        SERVED_STRATEGIES,
        STRATEGIES,
        StrategyContext,
        build_strategy,
    )
    from scan_server.service.schemas import AcquisitionSpec

    assert SERVED_STRATEGIES == ("value-map", "adaptive", "halton", "random", "raster")
    assert BASELINE_STRATEGIES == ("halton", "random", "raster") and REFERENCE_STRATEGIES == ("oracle-material",)
    assert not set(REFERENCE_STRATEGIES) & set(SERVED_STRATEGIES)  # references are never served
    assert all(entry.name == name for name, entry in STRATEGIES.items())
    # the service's schema takes its names from the registry
    assert set(AcquisitionSpec.model_json_schema()["properties"]["strategy"]["enum"]) == set(SERVED_STRATEGIES)
    for learned in ("adaptive", "value-map"):
        with pytest.raises(ParameterError, match="needs a model"):
            build_strategy(learned, StrategyContext(50))
