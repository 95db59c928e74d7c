import subprocess
import sys

import numpy as np
import pytest

from scan_server.cli import main
from scan_server.io.canonical import read_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--preset", "small", "--scan-shape", "12", "12", "--count", "2", "--seed", "3",
                 "--out", str(out)]) == 0
    return out / "small_000003.h5"


def test_simulate_writes_recordings_with_ground_truth(recording, capsys):
    acquisition = read_recording(recording)
    assert acquisition.frames.shape == (144, 64, 64)
    assert acquisition.ground_truth is not None
    assert acquisition.electrons_per_pattern == 2.1e5
    total = np.asarray(acquisition.frames[:]).sum(axis=(1, 2))
    assert total.mean() == pytest.approx(2.1e5, rel=0.02)  # counts conserve the dose
    assert (recording.parent / "small_000004.h5").exists()
    assert read_recording(recording).metadata["seed"] == 3


def test_simulate_resumes_by_skipping_finished_recordings(recording, capsys):
    assert main(["simulate", "--preset", "small", "--scan-shape", "12", "12", "--count", "1", "--seed", "3",
                 "--out", str(recording.parent)]) == 0
    assert "exists, skipped" in capsys.readouterr().out


def test_simulate_mixed_names_each_recording_by_its_family(tmp_path, capsys):
    """Seeds 3 and 4 of a mixed set are an island and particles (seed mod 6); the truth shows vacuum
    around the island, and its family and material fraction travel with the recording."""
    assert main(["simulate", "--preset", "small", "--scan-shape", "40", "40", "--specimen", "mixed", "--count", "2",
                 "--seed", "3", "--out", str(tmp_path)]) == 0
    island = read_recording(tmp_path / "small_island_000003.h5")
    description = island.metadata["specimen"]
    assert description["family"] == "island" and 0 < description["material_fraction_field"] < 1
    region = island.ground_truth.grid.scan_region(island.positions_angstrom)
    phase = island.ground_truth.phase_rad[region]
    assert (phase < 0.01 * phase.max()).mean() > 0.5 * (1 - description["material_fraction_field"])
    assert read_recording(tmp_path / "small_particles_000004.h5").metadata["specimen"]["family"] == "particles"


def test_simulate_with_a_real_detector_records_it_and_inspect_measures_it(tmp_path, capsys):
    """The detector options reach the frames (hot pixels, a 3 % semi-angle error) and the metadata;
    inspect reports the disagreement between the measured disc and the metadata."""
    assert main(["simulate", "--preset", "small", "--scan-shape", "16", "16", "--seed", "5", "--out", str(tmp_path),
                 "--detector-psf-px", "0.8", "--semiangle-error", "0.03", "--hot-pixels", "3",
                 "--dark-counts", "0.05", "--descan-px", "1.0"]) == 0
    acquisition = read_recording(tmp_path / "small_000005.h5")
    detector = acquisition.metadata["detector"]
    assert detector["psf_px"] == 0.8 and detector["semiangle_error"] == 0.03 and detector["hot_pixels"] == 3
    assert acquisition.optics.semiangle_mrad == 33.0  # the metadata says 33; the probe was simulated with 33/1.03
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "small_000005.h5")]) == 0
    printed = capsys.readouterr().out
    assert "DISAGREES with the metadata by -" in printed and "3 / 0 (masked)" in printed  # true: −2.9 %


def test_a_randomised_detector_is_drawn_per_recording_and_refuses_fixed_options(tmp_path, capsys):
    assert main(["simulate", "--preset", "small", "--scan-shape", "8", "8", "--count", "2", "--seed", "1",
                 "--randomise-detector", "--out", str(tmp_path)]) == 0
    drawn = [read_recording(tmp_path / f"small_00000{i}.h5").metadata for i in (1, 2)]
    assert drawn[0]["detector"] != drawn[1]["detector"]
    assert all(1e3 <= m["electrons_per_pattern"] <= 1e6 for m in drawn)
    from scan_server.training.data import TrainingData

    physics = TrainingData(tmp_path).describe()["physics"]  # what a model card records of its training data
    assert physics["families"] == ["film"] and physics["detector_ranges"]["psf_px"] == [0.0, 2.0]
    low, high = physics["detector_spans"]["psf_px"]
    assert low == min(m["detector"]["psf_px"] for m in drawn) and high == max(m["detector"]["psf_px"] for m in drawn)
    assert physics["electrons_per_pattern"][0] == min(m["electrons_per_pattern"] for m in drawn)
    assert main(["simulate", "--preset", "small", "--randomise-detector", "--dark-counts", "1",
                 "--out", str(tmp_path)]) == 2
    assert "--randomise-detector draws the detector" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["raster", "random", "halton"])
def test_reconstruct_writes_npy_and_png_and_prints_the_time(recording, tmp_path, capsys, strategy):
    out = tmp_path / f"rec_{strategy}"
    assert main(["reconstruct", str(recording), "--positions", "40", "--strategy", strategy, "--iterations", "3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reconstructed 40 positions, 3 iterations in" in printed
    assert "SSIM against the true phase" in printed
    potential = np.load(out.with_suffix(".npy"))
    assert np.iscomplexobj(potential) and np.isfinite(potential).all()
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--preset", "small", "--dose", "-5", "--out", "{tmp}"], "dose must be positive"),
    (["simulate", "--preset", "huge", "--out", "{tmp}"], "unknown preset"),
    (["simulate", "--preset", "small", "--semiangle-error", "0.9", "--out", "{tmp}"], "fractions within ±0.5"),
    (["simulate", "--preset", "small", "--dark-counts", "-1", "--out", "{tmp}"], "must not be negative"),
    (["reconstruct", "{tmp}/missing.h5", "--out", "{tmp}/x"], "no such file"),
    (["reconstruct", "{bad}", "--out", "{tmp}/x"], "not a readable HDF5 file"),
    (["reconstruct", "{rec}", "--positions", "100000", "--out", "{tmp}/x"], "number of positions"),
    (["reconstruct", "{rec}", "--positions", "many", "--out", "{tmp}/x"], "'all' or a number"),
    (["reconstruct", "{rec}", "--step-size", "-1", "--out", "{tmp}/x"], "step size must be positive"),
])
def test_bad_input_is_one_clear_line(argv, message, tmp_path, recording, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("garbage")
    argv = [a.format(tmp=tmp_path, bad=bad, rec=recording) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "scan_server.cli", "reconstruct", str(tmp_path / "nope.h5"),
                             "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


def test_inspect_lists_what_is_missing_and_how_to_supply_it(tmp_path, capsys):
    data = __import__("pathlib").Path(__file__).parent / "data"
    assert main(["inspect", str(data / "mos2_abtem_20x20_master.h5")]) == 2  # unusable as it is
    captured = capsys.readouterr()
    out = captured.out
    assert "missing" in out and "--scan-shape NY NX" in out and "--semiangle-mrad" in out
    assert "error: mos2_abtem_20x20_master.h5 cannot be used yet: 5 quantities missing" in captured.err
    # values read from the file are shown as a person reads them (no float noise, no dataclass repr)
    assert "60001.4  (file)" in out and "DetectorSampling(" not in out
    assert main(["inspect", str(data / "mos2_abtem_20x20_master.h5"), "--scan-shape", "20", "20",
                 "--scan-step-angstrom", "0.2", "--semiangle-mrad", "33", "--c10-angstrom", "-6.56",
                 "--detector-sampling", "0.4759", "1/nm"]) == 0
    out = capsys.readouterr().out
    assert "nothing missing" in out and "33 mrad" in out and "0.04759 Å⁻¹" in out


def test_an_option_that_replaces_a_sidecar_value_says_so(tmp_path, capsys):
    assert main(["simulate", "--preset", "small", "--scan-shape", "8", "8", "--seed", "2", "--format", "dectris",
                 "--out", str(tmp_path)]) == 0
    assert "cannot hold" in capsys.readouterr().out  # the sidecar is announced
    master = tmp_path / "small_000002_master.h5"
    assert main(["inspect", str(master), "--c10-angstrom", "0"]) == 0
    err = capsys.readouterr().err
    assert err.count("note: --c10-angstrom 0 replaces defocus (C10) = ") == 1 and "small_000002.metadata.json" in err


@pytest.mark.parametrize("file_format, name", [("nion", "small_000001.ndata"), ("dectris", "small_000001_master.h5")])
def test_simulate_in_other_formats_then_inspect_and_reconstruct(tmp_path, capsys, file_format, name):
    assert main(["simulate", "--preset", "small", "--scan-shape", "10", "10", "--seed", "1", "--format", file_format,
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / name).exists()
    assert not list(tmp_path.glob(".*staging*"))
    assert main(["inspect", str(tmp_path / name)]) == 0
    assert "nothing missing" in capsys.readouterr().out
    assert main(["reconstruct", str(tmp_path / name), "--positions", "30", "--out", str(tmp_path / "r")]) == 0
    assert "reconstructed 30 positions" in capsys.readouterr().out


def test_contradicting_the_file_is_an_error(tmp_path, capsys):
    data = __import__("pathlib").Path(__file__).parent / "data"
    assert main(["inspect", str(data / "mos2_abtem_20x20.h5"), "--semiangle-mrad", "25"]) == 2
    assert "the file gives convergence semi-angle = 33.0, but 25.0 was supplied" in capsys.readouterr().err


def test_evaluate_replay_and_demo_share_their_defaults_and_show_them():
    """The scored reconstructions of `evaluate`, `scan-client replay` and the demo use one default,
    converged like the full-data reference, and `--help` prints it."""
    from scan_server.emulation.cli import build_parser as client_parser
    from scan_server.emulation.demo import DEMO_POSITIONS

    from scan_server.cli import build_parser
    from scan_server.evaluation import DEFAULT_FINAL_ITERATIONS
    from scan_server.physics.reconstruct import GROUND_TRUTH_ITERATIONS

    assert DEFAULT_FINAL_ITERATIONS == GROUND_TRUTH_ITERATIONS
    evaluate = build_parser().parse_args(["evaluate", "--data", "x.h5", "--out", "o"])
    replay = client_parser().parse_args(["replay", "x.h5", "--server", "http://h", "--out", "o"])
    demo = client_parser().parse_args(["demo"])
    assert evaluate.final_iterations == replay.final_iterations == demo.final_iterations == DEFAULT_FINAL_ITERATIONS
    assert evaluate.positions == replay.positions == [250]
    assert demo.positions == list(DEMO_POSITIONS) and 250 in demo.positions
    for command in (["scan_server.cli", "evaluate"], ["scan_server.emulation.cli", "replay"], ["scan_server.emulation.cli", "demo"]):
        shown = subprocess.run([sys.executable, "-m", *command, "--help"], capture_output=True, text=True).stdout
        assert f"(default: {DEFAULT_FINAL_ITERATIONS})" in " ".join(shown.split())
