import json

import numpy as np
import pytest
import torch

from scan_server.cli import main
from scan_server.errors import ParameterError
from scan_server.policy.checkpoint import export_model, load_model_folder
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.policy.model_folder import ModelFolder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised tiny model, exported as a model folder."""
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    run = tmp_path_factory.mktemp("run")
    ModelFolder(run).save(model, {"settings": model.settings.as_dict()})
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
    assert report["positions"] == [30] and report["reference_positions"] == 30 and report["subsequences"] == 3
    assert len(report["recordings"]) == 2 and report["headline_score"] == "r_true_material"
    assert report["references"] == ["oracle-material"] and report["dose_ratio_vs_halton"] == {}  # one count
    for strategy in ("adaptive", "random", "halton", "raster", "oracle-material", "full"):
        entry = report[strategy]
        assert {"ssim_mean", "ssim_std", "resolution_angstrom_mean"} <= set(entry)
        assert 0 < entry["ssim_mean"] <= 1
    assert report["full"]["ssim_mean"] == 1.0
    for strategy in ("adaptive", "random", "halton", "raster", "oracle-material"):
        scores = report["scores"][strategy]["30"]
        assert set(scores) == {"ssim_field", "ssim_material", "r_material", "r_true_material", "ssim_true_material"}
        assert 0 < scores["ssim_material"] <= 1 and 0 < scores["r_true_material"] <= 1
        assert scores["ssim_field"] == pytest.approx(report[strategy]["ssim_mean"])
    for key in ("q_ssim_vs_random", "q_ssim_vs_halton"):
        low, high = report[key]["ci95"]
        assert low <= report[key]["mean"] <= high
    assert "q_res_vs_random" in report
    for name in report["recordings"]:
        assert 0 < report["per_recording"][name]["material_fraction"] <= 1
        for strategy in ("adaptive", "random", "halton", "raster", "oracle-material"):
            positions = np.loadtxt(out / "positions" / name / f"{strategy}.csv", delimiter=",", skiprows=1)
            assert positions.shape == (30, 2) and len(np.unique(positions, axis=0)) == 30
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert "| adaptive |" in (out / "report.md").read_text()
    # the figures can be recorded in the model card
    run = tiny_model.parent.parent / "run_for_card"
    run.mkdir(exist_ok=True)
    for name in ("model.safetensors", "model_card.json"):
        (run / name).write_bytes((tiny_model / name).read_bytes())
    installed = export_model(run, tmp_path / "models", "with-eval", [out / "report.json"])
    card = json.loads((installed / "model_card.json").read_text())
    assert card["evaluations"][0]["adaptive"]["ssim_mean"] == report["adaptive"]["ssim_mean"]


def test_dose_quality_curves_score_prefixes_of_one_scan(tiny_model, recordings, tmp_path):
    """A sequential strategy is run once to the largest count: its scan of fewer positions is a
    prefix, written in acquisition order; the raster is planned per count; every count is scored."""
    out = tmp_path / "curves"
    assert main(["evaluate", "--model", str(tiny_model), "--data", *map(str, recordings), "--positions", "40", "20",
                 "30", "--reference-positions", "30", "--final-iterations", "3", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["positions"] == [20, 30, 40] and report["reference_positions"] == 30
    for strategy in ("adaptive", "random", "halton", "raster", "oracle-material"):
        assert set(report["scores"][strategy]) == {"20", "30", "40"}
    ratios = report["dose_ratio_vs_halton"]
    assert set(ratios) == {"adaptive", "random", "raster", "oracle-material"}
    for entry in ratios.values():
        assert len(entry["per_recording"]) == 2 and entry["ci95"][0] <= entry["mean"] <= entry["ci95"][1]
        assert all(20 / 30 <= r <= 40 / 30 for r in entry["per_recording"])
    name = report["recordings"][0]
    halton = np.loadtxt(out / "positions" / name / "halton.csv", delimiter=",", skiprows=1)
    assert halton.shape == (40, 2)
    from scan_server.io.canonical import read_recording
    from scan_server.scanning.acquire import select_positions

    acquisition = read_recording(recordings[0])
    expected = acquisition.positions_angstrom[select_positions("halton", 40, acquisition.positions_angstrom, 0)]
    assert np.allclose(halton, expected, atol=1e-4)  # acquisition order, not sorted
    for count in (20, 40):
        raster = np.loadtxt(out / "positions" / name / f"raster_{count}.csv", delimiter=",", skiprows=1)
        assert raster.shape == (count, 2)
    assert (out / "figures" / "dose_quality.png").stat().st_size > 1000
    assert "dose ratio vs Halton" in (out / "report.md").read_text()
    # simulated films: the ratios are also given per specimen family
    assert report["per_recording"][name]["family"] == "film"
    for strategy, entry in report["dose_ratio_by_family"].items():
        assert entry["film"] == pytest.approx(ratios[strategy]["mean"])
    # simulations carry a truth: every truth-free score's ratios are held against the truth's
    agreement = report["truth_free_agreement"]
    assert set(agreement) == {"ssim_field", "ssim_material", "r_material"}
    for score, entry in agreement.items():
        by_score = report["dose_ratio_by_score"][score]
        assert set(by_score) == set(ratios) and 0 <= entry["ranking_agreement"] <= entry["pair_agreement"] <= 1
        for strategy, difference in entry["mean_ratio_difference"].items():
            assert difference == pytest.approx(by_score[strategy]["mean"] - ratios[strategy]["mean"])
    assert "Scores without a truth, held against it" in (out / "report.md").read_text()


def test_the_reference_count_must_be_one_of_the_counts(recordings, tmp_path, capsys):
    assert main(["evaluate", "--data", str(recordings[0]), "--positions", "20", "40", "--out",
                 str(tmp_path / "x")]) == 2
    assert "--reference-positions 250 must be one of --positions 20 40" in capsys.readouterr().err


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


def test_a_recording_without_ground_truth_is_scored_over_its_material(recordings, tmp_path):
    """A Dectris recording carries no truth: the truth scores are null, the headline is
    r_material, and the curves and dose ratios are still there (no agreement to report)."""
    from scan_server.io.canonical import read_recording
    from scan_server.io.dectris import write_dectris

    master = tmp_path / "run_master.h5"
    write_dectris(master, read_recording(recordings[0]))
    out = tmp_path / "dectris"
    assert main(["evaluate", "--data", str(master), "--scan-shape", "12", "12", "--scan-step-angstrom", "0.2",
                 "--positions", "20", "40", "--reference-positions", "20", "--final-iterations", "2",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["recordings"] == ["run"] and report["headline_score"] == "r_material"
    scores = report["scores"]["halton"]["40"]
    assert scores["r_true_material"] is None and scores["ssim_true_material"] is None
    assert 0 < scores["ssim_material"] <= 1
    assert set(report["dose_ratio_vs_halton"]) == {"random", "raster", "oracle-material"}
    assert "truth_free_agreement" not in report


def test_strategies_can_be_chosen_and_a_value_map_model_is_evaluated_with_it(recordings, tmp_path, capsys):
    from scan_server.policy.value_map import ValueMapSettings

    torch.manual_seed(0)
    tiny = ModelSettings.from_preset("tiny")
    model = AdaptiveModel(ModelSettings(tiny.preset, tiny.encoder, tiny.policy, ValueMapSettings(map_px=32)))
    run = tmp_path / "run"
    ModelFolder(run).save(model, {"settings": model.settings.as_dict()})
    installed = export_model(run, tmp_path / "models", "tiny-v2")
    assert json.loads((installed / "model_card.json").read_text())["strategies"] == ["adaptive", "value-map"]
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(installed), "--data", str(recordings[0]), "--positions", "30",
                 "--final-iterations", "3", "--strategies", "halton", "value-map", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["scores"]) == {"value-map", "halton"}
    name = report["recordings"][0]
    positions = np.loadtxt(out / "positions" / name / "value-map.csv", delimiter=",", skiprows=1)
    assert positions.shape == (30, 2) and len(np.unique(positions, axis=0)) == 30
    assert report["positions_per_step"] == 10       # the model's step size
    # Table I's rows: without adaptive, --subsequences cuts the largest count into that many equal steps
    assert main(["evaluate", "--model", str(installed), "--data", str(recordings[0]), "--positions", "30",
                 "--subsequences", "2", "--final-iterations", "3", "--strategies", "halton", "value-map",
                 "--out", str(tmp_path / "rows")]) == 0
    rows = json.loads((tmp_path / "rows" / "report.json").read_text())
    assert rows["positions_per_step"] == 15 and rows["subsequences"] == 2
    assert main(["evaluate", "--data", str(recordings[0]), "--positions", "30", "--strategies", "value-map",
                 "--out", str(tmp_path / "x")]) == 2
    assert "value-map needs a model that serves it" in capsys.readouterr().err


def test_same_seed_gives_every_recording_the_same_baseline_sequence(recordings, tmp_path):
    """--same-seed: recording i's baselines use --seed itself, not --seed + i (the two
    recordings share their scan grid, so the same Halton points choose the same patterns)."""
    visited = {}
    for flag in ([], ["--same-seed"]):
        out = tmp_path / ("same" if flag else "default")
        assert main(["evaluate", "--data", *map(str, recordings), "--positions", "30", "--strategies", "halton",
                     "--final-iterations", "2", "--seed", "5", "--out", str(out), *flag]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["baseline_seeds"] == ([5, 5] if flag else [5, 6])
        visited[bool(flag)] = [np.loadtxt(out / "positions" / name / "halton.csv", delimiter=",", skiprows=1)
                               for name in report["recordings"]]
    np.testing.assert_array_equal(visited[True][0], visited[True][1])
    assert not np.array_equal(visited[False][0], visited[False][1])
