"""oracle-material: the Halton order, vacuum skipped."""

import numpy as np
import pytest

from scan_server.contracts import RasterScan
from scan_server.errors import ParameterError
from scan_server.scanning.acquire import run_strategy, select_positions
from scan_server.scanning.registry import StrategyContext, build_strategy
from scan_server.scanning.virtual_microscope import VirtualMicroscope

RECORDED = RasterScan((40, 40), 0.5).positions_angstrom()  # 19.5 Å field


def oracle_run(material_at_unit, n: int, seed: int) -> np.ndarray:
    strategy = build_strategy("oracle-material", StrategyContext(n, seed, material_at_unit=material_at_unit))
    return run_strategy(strategy, VirtualMicroscope(RECORDED), n)


def test_on_a_field_of_material_it_is_the_halton_scan():
    everywhere = oracle_run(lambda unit: np.ones(len(unit), dtype=bool), 120, seed=3)
    assert np.array_equal(everywhere, select_positions("halton", 120, RECORDED, seed=3))


def test_it_visits_material_only_in_halton_order():
    chosen = oracle_run(lambda unit: unit[:, 1] < 0.5, 150, seed=3)  # x < 9.75 Å is material
    assert len(np.unique(chosen)) == 150
    assert np.all(RECORDED[chosen, 1] < 10.0)
    # the same points as the Halton scan's points in material, in the same order
    halton = select_positions("halton", 600, RECORDED, seed=3)
    in_material = halton[RECORDED[halton, 1] < 9.75]
    assert np.mean(chosen[:100] == in_material[:100]) > 0.95  # snapping may shift a rare point


def test_a_field_without_material_is_a_clear_error():
    with pytest.raises(ParameterError, match="shows no material"):
        oracle_run(lambda unit: np.zeros(len(unit), dtype=bool), 10, seed=0)
    with pytest.raises(ParameterError, match="needs the full-data reconstruction"):
        build_strategy("oracle-material", StrategyContext(10))
