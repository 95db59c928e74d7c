"""oracle-material: the Halton order, vacuum skipped."""

import numpy as np

from scan_server.contracts import ObjectGrid, RasterScan
from scan_server.evaluation.oracle import oracle_material_indices
from scan_server.evaluation.scores import ScoreReference
from scan_server.scanning.baselines import select_positions

RECORDED = RasterScan((40, 40), 0.5).positions_angstrom()  # 19.5 Å field


def reference(material: np.ndarray) -> ScoreReference:
    """A reference whose mask is ``material`` over a region of 0.5 Å pixels matching the scan."""
    grid = ObjectGrid((50, 50), 0.5, (-2.5, -2.5))
    region = (slice(5, 45), slice(5, 45))
    return ScoreReference(np.zeros((50, 50)), grid, region, material, None)


def test_on_a_field_of_material_it_is_the_halton_scan():
    everywhere = np.ones((40, 40), dtype=bool)
    assert np.array_equal(oracle_material_indices(reference(everywhere), RECORDED, 120, seed=3),
                          select_positions("halton", 120, RECORDED, seed=3))


def test_it_visits_material_only_in_halton_order():
    left = np.zeros((40, 40), dtype=bool)
    left[:, :20] = True  # x < 10 Å is material
    chosen = oracle_material_indices(reference(left), RECORDED, 150, seed=3)
    assert len(np.unique(chosen)) == 150
    assert np.all(RECORDED[chosen, 1] < 10.0)
    # the same points as the Halton scan's points in material, in the same order
    halton = select_positions("halton", 600, RECORDED, seed=3)
    in_material = halton[RECORDED[halton, 1] < 9.75]
    assert np.mean(chosen[:100] == in_material[:100]) > 0.95  # snapping may shift a rare point
