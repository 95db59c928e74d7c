import json

import numpy as np
import pytest
import torch

from scan_server.cli import main
from scan_server.errors import ParameterError
from scan_server.policy.checkpoint import export_model, load_model_folder
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.training.run import save_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised tiny model, exported as a model folder."""
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    run = tmp_path_factory.mktemp("run")
    save_model(run, model, {"settings": model.settings.as_dict()})
    return export_model(run, tmp_path_factory.mktemp("models"), "tiny-test")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval_data")
    assert main(["simulate", "--preset", "small", "--scan-shape", "12", "12", "--count", "2", "--seed", "7",
                 "--out", str(folder)]) == 0
    return sorted(folder.glob("*.h5"))


def test_evaluate_writes_a_well_formed_report(tiny_model, recordings, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--data", *map(str, recordings), "--positions", "30",
                 "--subsequences", "3", "--final-iterations", "5", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["positions"] == 30 and report["subsequences"] == 3 and len(report["recordings"]) == 2
    for strategy in ("adaptive", "random", "halton", "raster", "full"):
        entry = report[strategy]
        assert {"ssim_mean", "ssim_std", "resolution_angstrom_mean", "final_iterations"} <= set(entry)
        assert 0 < entry["ssim_mean"] <= 1
    assert report["full"]["ssim_mean"] == 1.0 and report["adaptive"]["final_iterations"] == 5
    for key in ("q_ssim_vs_random", "q_ssim_vs_halton"):
        low, high = report[key]["ci95"]
        assert low <= report[key]["mean"] <= high
    assert "q_res_vs_random" in report
    for name in report["recordings"]:
        for strategy in ("adaptive", "random", "halton", "raster"):
            positions = np.loadtxt(out / "positions" / name / f"{strategy}.csv", delimiter=",", skiprows=1)
            assert positions.shape == (30, 2) and len(np.unique(positions, axis=0)) == 30
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert "| adaptive |" in (out / "report.md").read_text()
    # the figures can be recorded in the model card
    run = tiny_model.parent.parent / "run_for_card"
    run.mkdir(exist_ok=True)
    for name in ("model.safetensors", "model_card.json"):
        (run / name).write_bytes((tiny_model / name).read_bytes())
    installed = export_model(run, tmp_path / "models", "with-eval", out / "report.json")
    card = json.loads((installed / "model_card.json").read_text())
    assert card["evaluations"][0]["adaptive"]["ssim_mean"] == report["adaptive"]["ssim_mean"]


def test_positions_must_match_the_models_sub_sequence(tiny_model, recordings, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(recordings[0]), "--positions", "20",
                 "--subsequences", "4", "--out", str(tmp_path / "x")]) == 2
    assert ("--positions must be more than 10 × (--subsequences − 1) and at most 10 × --subsequences "
            "(got 20 and 4)") in capsys.readouterr().err
    assert main(["evaluate", "--data", str(recordings[0]), "--positions", "250", "--out", str(tmp_path / "x")]) == 2
    assert "holds 144 patterns, fewer than --positions 250" in capsys.readouterr().err


def test_tampered_weights_are_refused(tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ParameterError, match="sha256"):
        load_model_folder(copy)
    assert load_model_folder(tiny_model).settings.preset == "tiny"


def test_a_last_step_shorter_than_the_models_is_cut_short_and_ground_truths_are_cached(tiny_model, recordings,
                                                                                        tmp_path):
    cache = tmp_path / "cache"
    common = ["--model", str(tiny_model), "--data", *map(str, recordings), "--subsequences", "3",
              "--final-iterations", "2", "--ground-truth-cache", str(cache)]
    assert main(["evaluate", *common, "--positions", "25", "--out", str(tmp_path / "a")]) == 0
    name = json.loads((tmp_path / "a" / "report.json").read_text())["recordings"][0]
    positions = np.loadtxt(tmp_path / "a" / "positions" / name / "adaptive.csv", delimiter=",", skiprows=1)
    assert positions.shape == (25, 2) and len(np.unique(positions, axis=0)) == 25
    entries = sorted(cache.glob("*.npz"))
    assert len(entries) == 2  # one per recording
    stamps = [e.stat().st_mtime_ns for e in entries]
    assert main(["evaluate", *common, "--positions", "30", "--out", str(tmp_path / "b")]) == 0
    assert [e.stat().st_mtime_ns for e in sorted(cache.glob("*.npz"))] == stamps  # read, not rewritten
    full = [json.loads((tmp_path / d / "report.json").read_text())["full"] for d in "ab"]
    assert full[0] == full[1]
    longer = np.loadtxt(tmp_path / "b" / "positions" / name / "adaptive.csv", delimiter=",", skiprows=1)
    assert {tuple(p) for p in positions} < {tuple(p) for p in longer}  # the same steps, the last one longer
