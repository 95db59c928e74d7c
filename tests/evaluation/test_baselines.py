import numpy as np
import pytest
from scipy.stats import qmc

from scan_server.contracts import RasterScan
from scan_server.errors import ParameterError
from scan_server.evaluation.baselines import halton_unit, select_positions, sparse_raster_unit

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
