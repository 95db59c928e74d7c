import dataclasses

import numpy as np
import pytest
import torch

from scan_server.cli import main
from scan_server.evaluation import ground_truth_cache
from scan_server.evaluation.evaluate import ground_truth
from scan_server.io.open import open_recording


@pytest.fixture(scope="module")
def acquisition(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gt_data")
    assert main(["simulate", "--preset", "small", "--scan-shape", "8", "8", "--seed", "3", "--out", str(folder)]) == 0
    return open_recording(next(folder.glob("*.h5")))


def test_a_cached_ground_truth_is_the_computed_one(acquisition, tmp_path):
    computed = ground_truth(acquisition, torch.device("cpu"))
    first = ground_truth(acquisition, torch.device("cpu"), cache=tmp_path)
    read = ground_truth(acquisition, torch.device("cpu"), cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1 and not list(tmp_path.glob(".*tmp"))
    for result in (first, read):
        np.testing.assert_allclose(result.potential, computed.potential, rtol=0, atol=1e-6)
        assert result.grid == computed.grid and result.iterations == computed.iterations
        np.testing.assert_array_equal(result.positions_angstrom, computed.positions_angstrom)


def test_the_key_follows_every_input_of_the_reconstruction(acquisition):
    key = ground_truth_cache.cache_key(acquisition)
    assert ground_truth_cache.cache_key(acquisition) == key
    frames = np.array(acquisition.frames[:])
    frames[5, 3, 3] += 1
    changed = [dataclasses.replace(acquisition, frames=frames),
               dataclasses.replace(acquisition, positions_angstrom=acquisition.positions_angstrom + 0.01),
               dataclasses.replace(acquisition, optics=dataclasses.replace(acquisition.optics, c10_angstrom=5.0)),
               dataclasses.replace(acquisition, detector_sampling_inv_angstrom=acquisition.detector_sampling_inv_angstrom
                                   * 1.01)]
    assert len({key, *(ground_truth_cache.cache_key(a) for a in changed)}) == 5
