import numpy as np
import pytest

from scan_server.io.frames import GridFrames, StackedFrames


def test_stacked_frames_match_numpy_for_any_index_order():
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 100, (n, 4, 4)) for n in (5, 3, 7)]
    whole = np.concatenate(parts)
    view = StackedFrames(parts)
    assert view.shape == (15, 4, 4) and len(view) == 15
    for key in (3, -1, slice(2, 11), [14, 0, 5, 5, 8], np.array([7, 6, 5])):
        np.testing.assert_array_equal(view[key], whole[key])
    with pytest.raises(IndexError):
        view[[15]]


def test_pixel_mask_reads_as_zero():
    frames = np.full((4, 3, 3), 65535, dtype=np.uint16)
    mask = np.zeros((3, 3), dtype=bool)
    mask[1, 2] = True
    view = StackedFrames([frames], mask)
    assert view[0][1, 2] == 0 and view[0][0, 0] == 65535


def test_grid_frames_flatten_in_row_major_scan_order():
    data = np.arange(3 * 4 * 2 * 2).reshape(3, 4, 2, 2)
    view = GridFrames(data)
    np.testing.assert_array_equal(view[[11, 0, 4, 4]], data.reshape(12, 2, 2)[[11, 0, 4, 4]])
    np.testing.assert_array_equal(view[:], data.reshape(12, 2, 2))
