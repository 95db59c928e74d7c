import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from scan_server.cli import main
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.policy.model_folder import ModelFolder
from scan_server.policy.recurrent import POLICY_PRESETS, ScanPolicy
from scan_server.rollout import EpisodeBatch
from scan_server.training.data import TrainingData
from scan_server.training.pretrain import halton_episode
from scan_server.training.reinforce import Specimens, advantages, reinforce_loss
from scan_server.training.settings import TrainSettings


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_data")
    assert main(["simulate", "--preset", "small", "--scan-shape", "12", "12", "--count", "2", "--out",
                 str(folder)]) == 0
    return folder


def test_halton_pretraining_converges_on_a_tiny_model(recordings):
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    data = TrainingData(recordings)
    batch = EpisodeBatch.over(data.acquisitions)
    inputs, latents, targets = halton_episode(batch, model, 4, [1, 2], rop_iterations=2)
    optimizer = torch.optim.Adam(model.policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        means, _ = model(inputs, latents)
        loss = ((means - targets) ** 2).sum() / len(targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def test_reinforce_moves_the_means_towards_a_known_optimum():
    """Toy problem: reward −|a − target|² per position; the optimum is means = target."""
    torch.manual_seed(0)
    settings = POLICY_PRESETS["tiny"]
    policy = ScanPolicy(settings, latent_dim=4)
    inputs, latents = torch.rand(16, 1, settings.subsequence, 2), torch.randn(16, 1, 4)
    target = torch.full((settings.subsequence, 2), 0.7)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)

    def distance() -> float:
        with torch.no_grad():
            return float((policy(inputs, latents)[0] - target).norm(dim=-1).mean())

    before = distance()
    for _ in range(300):
        means, _ = policy(inputs, latents)
        actions = means.detach() + settings.sigma * torch.randn(means.shape, generator=generator)
        rewards = -((actions - target) ** 2).sum(dim=-1)
        loss = reinforce_loss(policy.log_prob(actions, means), advantages(rewards, "batch"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert distance() < 0.5 * before


def test_the_halton_baseline_is_the_halton_scan_s_own_score_on_each_specimen(recordings):
    """Specimens keeps, per recording, the headline score after each sub-sequence of the
    Halton scan; a rollout that follows the Halton continuation scores exactly that."""
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    settings = TrainSettings(preset="tiny", steps=3, rop_iterations=2, reward="quality", baseline="halton")
    data = TrainingData(recordings)
    batch = EpisodeBatch.over([data.acquisitions[1], data.acquisitions[0], data.acquisitions[1]])
    specimens = Specimens(model, settings)
    known = specimens.of(batch)
    assert known[0] is known[2] and len(specimens.known) == 2
    for s in known:
        assert s.halton_scores.shape == (3,) and torch.all(s.halton_scores.abs() <= 1)
        region = tuple(r.stop - r.start for r in batch.region)
        assert s.material.shape == s.truth_rad.shape == region
    # the same scan played again (in another batch) scores the same
    from scan_server.rollout import halton_teacher, rollout
    from scan_server.training.rewards import material_pearson
    seeds = [model.settings.policy.halton_seed]
    again = rollout(EpisodeBatch.over([data.acquisitions[0]]), model, 3, seeds, iterations=2,
                    teacher=halton_teacher(model.settings.policy.subsequence, seeds), keep_phases=True)
    scores = material_pearson(again.phases, known[1].truth_rad[None], known[1].material[None])[0]
    torch.testing.assert_close(scores, known[1].halton_scores)


@pytest.mark.parametrize("stage", ["cae", "pretrain", "rl"])
def test_each_stage_runs_as_a_subprocess(recordings, tmp_path, stage):
    run = tmp_path / "run"
    for previous in ("cae", "pretrain", "rl")[: ("cae", "pretrain", "rl").index(stage) + 1]:
        result = subprocess.run([sys.executable, "-m", "scan_server.cli", "train", previous, "--preset", "tiny",
                                 "--data", str(recordings), "--out", str(run), "--iterations", "2"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((run / "model_card.json").read_text())
    assert stage in card["training"] and card["data"]["sha256"] and card["stage"] == stage
    assert (run / f"{stage}.csv").read_text().count("\n") == 3 and (run / f"{stage}.png").exists()
    assert set(load_file(str(run / "model.safetensors"))) == set(AdaptiveModel(ModelSettings.from_preset("tiny"))
                                                                  .state_dict())


def test_resuming_reproduces_the_uninterrupted_run(recordings, tmp_path):
    base = tmp_path / "base"
    assert main(["train", "pretrain", "--preset", "tiny", "--data", str(recordings), "--out", str(base),
                 "--iterations", "1"]) == 0
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    shutil.copytree(base, whole)
    shutil.copytree(base, parts)
    common = ["--preset", "tiny", "--data", str(recordings), "--checkpoint-every", "2", "--seed", "5"]
    assert main(["train", "rl", *common, "--out", str(whole), "--iterations", "4"]) == 0
    assert main(["train", "rl", *common, "--out", str(parts), "--iterations", "2"]) == 0  # "interrupted"
    assert main(["train", "rl", *common, "--out", str(parts), "--iterations", "4"]) == 0  # resumes at 2
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(parts / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert (whole / "rl.csv").read_text() == (parts / "rl.csv").read_text()


@pytest.mark.slow
def test_two_process_ddp_on_cpu(recordings, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", str(29500 + os.getpid() % 1000), "-m", "scan_server.cli", "train",
                             "cae", "--preset", "tiny", "--data", str(recordings), "--out", str(tmp_path / "ddp"),
                             "--iterations", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((tmp_path / "ddp" / "model_card.json").read_text())
    assert card["training"]["cae"]["processes"] == 2
    rows = (tmp_path / "ddp" / "cae.csv").read_text().split()[1:]
    assert len(rows) == 2 and all(np.isfinite(float(row.split(",")[1])) for row in rows)


def test_pretrain_starts_a_policy_of_another_size_on_the_trained_autoencoder(recordings, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--preset", "tiny", "--data", str(recordings), "--out", str(run), "--iterations", "1"]
    assert main(["train", "cae", *common]) == 0
    assert main(["train", "pretrain", *common]) == 0
    before = load_file(str(run / "model.safetensors"))
    assert main(["train", "rl", *common, "--subsequence", "7"]) == 2
    assert "only the pretrain stage can start one of 7" in capsys.readouterr().err
    assert main(["train", "pretrain", *common, "--subsequence", "7", "--steps", "4"]) == 2
    assert "holds a pretraining checkpoint of 10 positions per step" in capsys.readouterr().err

    fresh = tmp_path / "fresh"
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("pretrain.*"))
    assert main(["train", "pretrain", "--preset", "tiny", "--data", str(recordings), "--out", str(fresh),
                 "--iterations", "1", "--subsequence", "7", "--steps", "4"]) == 0
    card = json.loads((fresh / "model_card.json").read_text())
    assert card["settings"]["policy"]["subsequence"] == 7 and set(card["training"]) == {"cae", "pretrain"}
    assert "evaluations" not in card and "pretrain_seconds" in card
    after = load_file(str(fresh / "model.safetensors"))
    assert after["policy.fc_h.weight"].shape == (14, POLICY_PRESETS["tiny"].hidden)
    for key in (k for k in before if k.startswith("autoencoder.")):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def test_training_on_from_an_installed_model_gives_a_loadable_run(recordings, tmp_path):
    """An installed model's card holds the sha256 of its weights; a stage trained on from it
    must not carry that stale sha256 (the run would then be refused as tampered)."""
    from scan_server.policy.checkpoint import export_model, load_model_folder

    run = tmp_path / "run"
    assert main(["train", "pretrain", "--preset", "tiny", "--data", str(recordings), "--out", str(run),
                 "--iterations", "1"]) == 0
    installed = export_model(run, tmp_path / "models", "base")
    again = tmp_path / "again"
    again.mkdir()
    for name in ("model.safetensors", "model_card.json"):
        shutil.copyfile(installed / name, again / name)
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(again),
                 "--iterations", "1"]) == 0
    assert "weights_sha256" not in json.loads((again / "model_card.json").read_text())
    load_model_folder(again)


def test_ctrl_c_keeps_every_finished_iteration_and_the_run_goes_on(recordings, tmp_path):
    """A Ctrl-C during a stage finishes the iteration, checkpoints it and stops; the same
    command then resumes there, so the interrupted and the uninterrupted runs agree. Running
    a finished stage again changes nothing (its time is not reset)."""
    import signal

    from scan_server.policy.model import AdaptiveModel, ModelSettings
    from scan_server.training.run import Distributed, load_checkpoint, run_stage

    def run(folder, iterations, interrupt_at=None):
        torch.manual_seed(0)
        model = AdaptiveModel(ModelSettings.from_preset("tiny"))
        optimizer = torch.optim.Adam(model.policy.parameters(), lr=1e-2)

        def step(state):
            loss = sum((p**2).sum() for p in model.policy.parameters()) * (1 + state.rng.random())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if state.iteration + 1 == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)  # arrives while this iteration is still running
            return {"loss": float(loss.detach())}

        return run_stage(folder, "rl", model, optimizer, iterations, step, 3, {}, Distributed(0, 1), 50)

    run(tmp_path / "whole", 6)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "parts", 6, interrupt_at=4)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    saved = load_checkpoint(tmp_path / "parts", "rl", model, torch.optim.Adam(model.policy.parameters()))
    assert saved.iteration == 4 and [h["iteration"] for h in saved.history] == [1, 2, 3, 4]
    run(tmp_path / "parts", 6)
    assert (tmp_path / "whole" / "rl.csv").read_text() == (tmp_path / "parts" / "rl.csv").read_text()
    card = json.loads((tmp_path / "parts" / "model_card.json").read_text())
    run(tmp_path / "parts", 6)  # finished: nothing to do
    assert json.loads((tmp_path / "parts" / "model_card.json").read_text()) == card
    assert card["rl_seconds"] > 0

    # stopped at 3 of 6 in a folder holding the previous stage's model, then ended there (--iterations 3):
    # the run's model becomes the checkpoint's, not the previous stage's
    early = tmp_path / "early"
    torch.manual_seed(0)
    ModelFolder(early).save(AdaptiveModel(ModelSettings.from_preset("tiny")), {"stage": "pretrain"})
    before = load_file(str(early / "model.safetensors"))
    with pytest.raises(KeyboardInterrupt):
        run(early, 6, interrupt_at=3)
    assert json.loads((early / "model_card.json").read_text())["stage"] == "pretrain"
    run(early, 3)
    after = load_file(str(early / "model.safetensors"))
    checkpoint = load_file(str(early / "rl.checkpoint.safetensors"))
    assert all(torch.equal(after[k], checkpoint[f"model.{k}"]) for k in after)
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("policy."))
    card = json.loads((early / "model_card.json").read_text())
    assert card["stage"] == "rl" and card["rl_iterations"] == 3
    run(early, 3)  # now finished: nothing to do
    assert json.loads((early / "model_card.json").read_text()) == card


def test_export_never_overwrites_an_installed_model_unless_asked(recordings, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "pretrain", "--preset", "tiny", "--data", str(recordings), "--out", str(run),
                 "--iterations", "1"]) == 0
    models = tmp_path / "models"
    assert main(["export", str(run), "--name", "mine", "--models", str(models)]) == 0
    assert main(["export", str(run), "--name", "mine", "--models", str(models)]) == 2
    assert "exists: choose another --name, or --replace" in capsys.readouterr().err
    assert main(["export", str(run), "--name", "mine", "--models", str(models), "--replace"]) == 0


def test_rl_with_the_quality_reward_and_the_halton_baseline_runs_and_logs_the_gap(recordings, tmp_path):
    run = tmp_path / "run"
    for stage, extra in (("pretrain", []), ("rl", ["--reward", "quality", "--baseline", "halton", "--normalise"])):
        assert main(["train", stage, "--preset", "tiny", "--data", str(recordings), "--out", str(run),
                     "--iterations", "2", *extra]) == 0
    header = (run / "rl.csv").read_text().splitlines()[0].split(",")
    assert {"reward", "halton_reward", "gap_to_halton", "loss"} <= set(header)
    settings = json.loads((run / "model_card.json").read_text())["training"]["rl"]
    assert settings["reward"] == "quality" and settings["baseline"] == "halton" and settings["normalise"] is True


@pytest.mark.parametrize("reward, logged", [("quality", {"reward", "spread_on_specimen", "gap_to_halton"}),
                                            ("error", {"reward", "headline", "gap_to_halton"})])
def test_rl_with_the_specimen_baseline_plays_each_specimen_several_times(recordings, tmp_path, reward, logged):
    run = tmp_path / "run"
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(run), "--iterations", "2",
                 "--batch", "4", "--reward", reward, "--baseline", "specimen", "--episodes-per-specimen", "2",
                 "--normalise"]) == 0
    header = (run / "rl.csv").read_text().splitlines()[0].split(",")
    assert logged | {"loss"} <= set(header)


@pytest.mark.parametrize("options", [["--baseline", "specimen"],
                                     ["--baseline", "specimen", "--episodes-per-specimen", "3", "--batch", "4"]])
def test_the_specimen_baseline_needs_whole_groups(recordings, tmp_path, options, capsys):
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(tmp_path / "run"),
                 "--iterations", "1", *options]) == 2
    assert "--episodes-per-specimen" in capsys.readouterr().err


def test_the_halton_baseline_needs_a_per_sub_sequence_reward(recordings, tmp_path, capsys):
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(tmp_path / "run"),
                 "--iterations", "1", "--baseline", "halton"]) == 2
    assert "needs --reward quality" in capsys.readouterr().err


def test_the_rollout_keeps_the_phase_after_every_sub_sequence_when_asked(recordings):
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    batch = EpisodeBatch.over(TrainingData(recordings).acquisitions)
    from scan_server.rollout import rollout
    kept = rollout(batch, model, 3, [0, 0], iterations=2, keep_phases=True)
    plain = rollout(batch, model, 3, [0, 0], iterations=2)
    h, w = (r.stop - r.start for r in batch.region)
    assert kept.phases.shape == (2, 3, h, w) and plain.phases.numel() == 0
    torch.testing.assert_close(kept.phases[:, -1], kept.final.real[:, batch.region[0], batch.region[1]].float())
    torch.testing.assert_close(kept.final, plain.final)  # keeping them changes nothing of the episode
    # the first sub-sequence already reconstructs something
    assert kept.phases[:, 0].abs().sum() > 0


def test_vine_branches_share_the_means_up_to_the_branch_and_mirror_their_deviations(recordings):
    """rollout(sample_from=t, mirrored=True): before sub-sequence t + 1 every episode takes the
    means, so episodes on one recording acquire the same positions there; from then on
    consecutive pairs deviate by ε and −ε."""
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    acquisition = TrainingData(recordings).acquisitions[0]
    batch = EpisodeBatch.over([acquisition] * 4)
    from scan_server.rollout import rollout
    episodes = rollout(batch, model, 4, [0] * 4, sample=True, generator=torch.Generator().manual_seed(3),
                       iterations=2, sample_from=2, mirrored=True)
    deviations = episodes.actions - episodes.means
    assert torch.all(deviations[:, 0] == 0)  # the action choosing sub-sequence 2: the means
    assert torch.all(deviations[:, 1:].abs() > 0)
    torch.testing.assert_close(deviations[1::2, 1:], -deviations[0::2, 1:])
    assert np.all(episodes.indices[:, : 2 * model.settings.policy.subsequence]
                  == episodes.indices[0, : 2 * model.settings.policy.subsequence])
    assert len({tuple(row) for row in episodes.indices[:, 2 * model.settings.policy.subsequence:]}) > 1


def test_rl_with_vine_sampling_credits_the_branch_and_logs_the_means_curve(recordings, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(run), "--iterations", "2",
                 "--batch", "4", "--reward", "quality", "--baseline", "specimen", "--episodes-per-specimen", "4",
                 "--sampling", "vine", "--mirrored", "--normalise"]) == 0
    rows = (run / "rl.csv").read_text().splitlines()
    assert {"branch", "gain", "spread_on_specimen", "gap_to_halton", "loss"} <= set(rows[0].split(","))
    settings = json.loads((run / "model_card.json").read_text())["training"]["rl"]
    assert settings["sampling"] == "vine" and settings["mirrored"] is True


def test_the_shared_state_scored_from_scratch_is_the_in_loop_state_when_the_iterations_agree(recordings):
    """score_iterations reconstructs the branches' shared state again from its recorded patterns;
    with the in-loop iterations that is exactly the rollout's own reconstruction at the branch,
    and with more iterations it is a different (further converged) one."""
    from scan_server.rollout import rollout
    from scan_server.training.reinforce import _shared_state_scores, specimen_scores
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    acquisitions = TrainingData(recordings).acquisitions
    batch = EpisodeBatch.over([a for a in acquisitions for _ in range(2)])
    settings = TrainSettings(preset="tiny", batch=4, steps=3, reward="quality", baseline="specimen",
                             episodes_per_specimen=2, sampling="vine")
    known = Specimens(model, settings).of(batch)
    episodes = rollout(batch, model, 3, [0] * 4, sample=True, generator=torch.Generator().manual_seed(1),
                       iterations=2, keep_phases=True, sample_from=2, mirrored=True)
    shared = 2 * model.settings.policy.subsequence
    in_loop = specimen_scores(episodes.phases[:, -2:-1], known)[:, 0]
    trunks = EpisodeBatch.over(acquisitions)
    torch.testing.assert_close(_shared_state_scores(episodes, trunks, shared, 2, known), in_loop)
    assert not torch.allclose(_shared_state_scores(episodes, trunks, shared, 12, known), in_loop)


def test_rl_with_vine_sampling_scores_converged_reconstructions_when_asked(recordings, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(run), "--iterations", "1",
                 "--batch", "2", "--reward", "quality", "--baseline", "specimen", "--episodes-per-specimen", "2",
                 "--sampling", "vine", "--score-iterations", "8"]) == 0
    assert json.loads((run / "model_card.json").read_text())["training"]["rl"]["score_iterations"] == 8
    assert {"gain", "gap_to_halton"} <= set((run / "rl.csv").read_text().splitlines()[0].split(","))


def test_halton_s_last_score_is_the_converged_one_with_score_iterations(recordings):
    """The logged gap compares the policy's converged reconstruction with Halton's converged one."""
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    batch = EpisodeBatch.over(TrainingData(recordings).acquisitions)
    common = dict(preset="tiny", batch=2, steps=3, rop_iterations=2, reward="quality", baseline="specimen",
                  episodes_per_specimen=2, sampling="vine")
    plain = Specimens(model, TrainSettings(**common)).of(batch)
    converged = Specimens(model, TrainSettings(**common, score_iterations=12)).of(batch)
    for a, b in zip(plain, converged):
        torch.testing.assert_close(a.halton_scores[:-1], b.halton_scores[:-1])
        assert not torch.isclose(a.halton_scores[-1], b.halton_scores[-1])


@pytest.mark.parametrize("options, message", [
    (["--sampling", "vine"], "vine sampling compares the branches"),
    (["--sampling", "vine", "--reward", "error", "--baseline", "specimen", "--episodes-per-specimen", "2"],
     "vine sampling compares the branches"),
    (["--mirrored", "--baseline", "specimen", "--episodes-per-specimen", "3", "--batch", "3"], "must be even"),
    (["--score-iterations", "30", "--reward", "quality", "--baseline", "halton"], "it needs --sampling vine")])
def test_vine_and_mirrored_sampling_refuse_what_they_cannot_do(recordings, tmp_path, options, message, capsys):
    assert main(["train", "rl", "--preset", "tiny", "--data", str(recordings), "--out", str(tmp_path / "run"),
                 "--iterations", "1", *options]) == 2
    assert message in capsys.readouterr().err


def test_snapshots_keep_each_checkpoint_s_weights(recordings, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "pretrain", "--preset", "tiny", "--data", str(recordings), "--out", str(run),
                 "--iterations", "4", "--checkpoint-every", "2", "--snapshots"]) == 0
    kept = sorted(p.name for p in (run / "snapshots").iterdir())
    assert kept == ["pretrain-it-2.safetensors", "pretrain-it-4.safetensors"]
    last, model = load_file(str(run / "snapshots" / kept[-1])), load_file(str(run / "model.safetensors"))
    assert set(last) == set(model)
    for key in model:
        torch.testing.assert_close(last[key], model[key], rtol=0, atol=0)
    first = load_file(str(run / "snapshots" / kept[0]))
    assert any(not torch.equal(first[k], last[k]) for k in last)  # the weights moved between checkpoints


def test_headline_scores_score_each_recording_against_its_own_truth(recordings):
    """The truth scores 1 against itself; a recording's phase scored against the other's truth
    does not (each row is scored against its own recording)."""
    from scan_server.training.reinforce import headline_scores, truth_on_grid
    data = TrainingData(recordings)
    batch = EpisodeBatch.over([data.acquisitions[0], data.acquisitions[1], data.acquisitions[0]])
    truths = torch.stack([truth_on_grid(a, batch)[0] for a in batch.acquisitions])
    own = headline_scores(batch, truths[:, None].float())
    torch.testing.assert_close(own, torch.ones(3, 1, dtype=own.dtype), rtol=0, atol=1e-6)
    swapped = headline_scores(batch, truths[[1, 0, 1], None].float())
    assert torch.all(swapped < 0.99)
