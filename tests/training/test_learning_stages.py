"""The value-map and imitation (DAgger) stages: labels with known answers, the matching, the stages end to end."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from scan_server.cli import main
from scan_server.contracts import ObjectGrid
from scan_server.evaluation.metrics import pearson
from scan_server.scanning.virtual_microscope import VirtualMicroscope
from scan_server.training.value_map import RecordingTruth, error_label, material_error


def _synthetic_truth(size: int = 60, pixel_angstrom: float = 0.33) -> RecordingTruth:
    """A textured specimen on the right two thirds of the field, vacuum on the left third."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(size, size))
    material = np.zeros((size, size), dtype=bool)
    material[:, size // 3:] = True
    truth[~material] = 0.0
    grid = ObjectGrid((size, size), pixel_angstrom, (0.0, 0.0))
    microscope = VirtualMicroscope(np.stack(np.meshgrid(np.arange(4.0), np.arange(4.0)), -1).reshape(-1, 2))
    return RecordingTruth(grid, (slice(0, size), slice(0, size)), truth, material, np.zeros(16), microscope)


def test_the_material_error_is_one_minus_pearson():
    truth = _synthetic_truth()
    noisy = truth.truth_rad + 0.7 * np.random.default_rng(1).normal(size=truth.truth_rad.shape)
    error = material_error(noisy, truth.truth_rad, truth.material)
    r = pearson(noisy[truth.material], truth.truth_rad[truth.material])
    assert np.isclose(error[truth.material].mean(), 1 - r)
    assert (error[~truth.material] == 0).all()


def test_the_label_peaks_where_the_reconstruction_is_wrong_and_vanishes_in_vacuum():
    """A known answer: the reconstruction equals the truth except in one patch of material."""
    truth = _synthetic_truth()
    reconstruction = truth.truth_rad.copy()
    patch = (slice(35, 45), slice(40, 50))
    reconstruction[patch] += 3.0 * np.random.default_rng(2).normal(size=(10, 10))
    label = error_label(reconstruction, truth, 30)
    assert label.shape == (30, 30) and np.isclose(label.mean(), 1.0)
    peak = np.unravel_index(np.argmax(label), label.shape)
    assert 17 <= peak[0] <= 22 and 20 <= peak[1] <= 25  # the patch's centre (40, 45) px → (20, 22.5) on the map
    assert label[:, :7].max() < 1e-3 * label.max()  # vacuum far from the material: no value
    assert error_label(truth.truth_rad, truth, 30) is None  # nothing wrong: no label


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("value_map_data")
    assert main(["simulate", "--preset", "small", "--scan-shape", "12", "12", "--count", "2", "--specimen", "island",
                 "--out", str(folder)]) == 0
    return folder


def test_the_stage_adds_a_value_map_and_trains_only_it(recordings, tmp_path):
    run = tmp_path / "run"
    common = ["--preset", "tiny", "--data", str(recordings), "--out", str(run), "--iterations", "2"]
    assert main(["train", "cae", *common]) == 0
    before = load_file(str(run / "model.safetensors"))
    assert main(["train", "value-map", *common]) == 0
    after = load_file(str(run / "model.safetensors"))
    card = json.loads((run / "model_card.json").read_text())
    assert card["settings"]["value_map"]["map_px"] == 64 and "value-map" in card["training"]
    assert any(k.startswith("value_map.") for k in after)
    for key in before:  # the autoencoder and the policy are untouched
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    rows = (run / "value-map.csv").read_text().split()[1:]
    assert len(rows) == 2 and all(np.isfinite(float(v)) for row in rows for v in row.split(",")[1:])


def test_dagger_matching_pairs_each_mean_with_its_nearest_teacher_position():
    from scan_server.training.imitate import follow_probability, matched_targets

    means = torch.tensor([[[0.1, 0.1], [0.9, 0.9], [0.5, 0.2]]])
    targets = torch.tensor([[[0.52, 0.21], [0.12, 0.08], [0.88, 0.93]]])   # the same points, shuffled
    matched = matched_targets(means, targets)
    torch.testing.assert_close(matched, targets[:, [1, 2, 0]])
    assert ((matched - means) ** 2).sum() < ((targets - means) ** 2).sum()
    # a permutation of the teacher's positions changes nothing
    torch.testing.assert_close(matched_targets(means, targets[:, [2, 0, 1]]), matched)
    assert follow_probability(0, 10) == 1.0 and follow_probability(5, 10) == 0.0 and follow_probability(9, 10) == 0.0


def test_the_imitation_stage_trains_the_policy_on_the_value_map(recordings, tmp_path):
    run = tmp_path / "run"
    common = ["--preset", "tiny", "--data", str(recordings), "--out", str(run), "--iterations", "2"]
    assert main(["train", "imitate", *common]) == 2  # no value map yet: a clear error
    assert main(["train", "value-map", *common]) == 0
    before = load_file(str(run / "model.safetensors"))
    assert main(["train", "imitate", *common]) == 0
    after = load_file(str(run / "model.safetensors"))
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("policy."))
    for key in (k for k in before if not k.startswith("policy.")):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    rows = (run / "imitate.csv").read_text().split()
    assert rows[0] == "iteration,imitation_rms,follow_teacher" and len(rows) == 3
