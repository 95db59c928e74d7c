import numpy as np
import pytest

from scan_server.contracts import Acquisition, ProbeOptics, RasterScan
from scan_server.errors import ParameterError
from scan_server.scanning.virtual_microscope import VirtualMicroscope

SCAN = RasterScan((10, 12), 0.2)


@pytest.fixture
def microscope() -> VirtualMicroscope:
    frames = np.arange(SCAN.count)[:, None, None] * np.ones((1, 4, 4), dtype=np.int64)
    acquisition = Acquisition(frames=frames, positions_angstrom=SCAN.positions_angstrom(),
                              optics=ProbeOptics(60e3, 33.0), detector_px=4, detector_sampling_inv_angstrom=0.05,
                              scan=SCAN)
    return VirtualMicroscope.over(acquisition)


def test_returns_the_nearest_recorded_pattern_and_where_it_was(microscope):
    exposure = microscope.acquire(np.array([[0.41, 0.79], [1.0, 1.21]]))
    np.testing.assert_allclose(exposure.positions_angstrom, [[0.4, 0.8], [1.0, 1.2]])
    # frame k holds the value k: the frames are those of the returned indices
    assert [int(f[0, 0]) for f in exposure.frames] == list(exposure.indices)
    assert list(exposure.indices) == [2 * 12 + 4, 5 * 12 + 6]


def test_never_returns_a_pattern_twice(microscope):
    same_place = np.tile([[0.9, 1.1]], (30, 1))
    exposure = microscope.acquire(same_place)
    assert len(np.unique(exposure.indices)) == 30
    # each next pattern is the nearest free one: distances never decrease
    distance = np.linalg.norm(exposure.positions_angstrom - [0.9, 1.1], axis=1)
    assert np.all(np.diff(distance) >= -1e-12)
    more = microscope.acquire(np.tile([[0.9, 1.1]], (5, 1)))
    assert not set(more.indices) & set(exposure.indices)


def test_positions_outside_the_field_of_view_snap_to_the_edge(microscope):
    exposure = microscope.acquire(np.array([[-5.0, -5.0], [99.0, 99.0], [-1.0, 1.0], [0.55, 50.0]]))
    np.testing.assert_allclose(exposure.positions_angstrom, [[0, 0], [1.8, 2.2], [0, 1.0], [0.6, 2.2]])


def test_unit_coordinates_span_the_field_of_view(microscope):
    np.testing.assert_allclose(microscope.to_angstrom(np.array([[0, 0], [1, 1], [0.5, 0.5]])),
                               [[0, 0], [1.8, 2.2], [0.9, 1.1]])
    np.testing.assert_allclose(microscope.to_unit(microscope.to_angstrom(np.array([[0.3, 0.7]]))), [[0.3, 0.7]])


def test_exhaustion_is_a_clear_error_and_reset_frees_everything(microscope):
    microscope.acquire(np.zeros((SCAN.count - 2, 2)))
    with pytest.raises(ParameterError, match="only 2 of the recording's 120 patterns are unused"):
        microscope.acquire(np.zeros((3, 2)))
    microscope.reset()
    assert microscope.remaining == SCAN.count
