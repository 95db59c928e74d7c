"""FieldOfView: the one unit ↔ Å conversion (virtual microscope, service, rollout)."""

import numpy as np

from scan_server.contracts import ObjectGrid, RasterScan, SamplingGeometry
from scan_server.scanning.field_of_view import FieldOfView
from scan_server.scanning.virtual_microscope import VirtualMicroscope


def test_unit_and_angstrom_are_inverse_and_the_edge_clips():
    field = FieldOfView((1.0, -2.0), (4.0, 8.0))
    unit = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.5]])
    angstrom = field.to_angstrom(unit)
    np.testing.assert_allclose(angstrom, [[1.0, -2.0], [5.0, 6.0], [2.0, 2.0]])
    np.testing.assert_allclose(field.to_unit(angstrom), unit)
    np.testing.assert_allclose(field.to_angstrom([[-0.5, 1.5]]), [[1.0, 6.0]])  # clipped to the edge
    np.testing.assert_allclose(field.to_unit([[0.0, 8.0]]), [[-0.25, 1.25]])  # landings outside show


def test_a_single_row_maps_its_zero_extent_axis_to_the_origin():
    field = FieldOfView.of_positions(np.array([[3.0, 0.0], [3.0, 2.0]]))
    assert field.extent_angstrom == (0.0, 2.0)
    np.testing.assert_allclose(field.to_angstrom([[0.7, 0.5]]), [[3.0, 1.0]])
    np.testing.assert_allclose(field.to_unit([[3.0, 1.0]]), [[0.0, 0.5]])


def test_the_recording_and_a_session_of_the_same_field_agree():
    """A recording's field (its positions' bounding box) and a session's spec (origin 0, the
    same extent) convert alike, and cover the same pixels of a grid."""
    recorded = RasterScan((10, 12), 0.2).positions_angstrom()
    microscope = VirtualMicroscope(recorded)
    session = FieldOfView.from_origin(np.ptp(recorded, axis=0).tolist())
    unit = np.random.default_rng(0).random((20, 2))
    np.testing.assert_allclose(microscope.to_angstrom(unit), session.to_angstrom(unit))
    grid = ObjectGrid.covering(recorded, SamplingGeometry(32, 0.04759))
    assert microscope.field.region(grid) == session.region(grid) == grid.scan_region(recorded)
