import numpy as np
import torch

from scan_server.cli import main
from scan_server.io.open import open_recording
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.policy.strategy import AdaptiveScan
from scan_server.rollout import EpisodeBatch, reconstruct_batch, rollout
from scan_server.scanning.state import ScanState


def test_adaptive_strategy_makes_the_rollouts_decisions(tmp_path):
    assert main(["simulate", "--preset", "small", "--scan-shape", "12", "12", "--out", str(tmp_path)]) == 0
    acquisition = open_recording(tmp_path / "small_000000.h5")
    torch.manual_seed(3)
    model = AdaptiveModel(ModelSettings.from_preset("tiny")).eval()
    batch = EpisodeBatch.over([acquisition])
    expected = rollout(batch, model, 3, [11]).indices[0]

    strategy, microscope = AdaptiveScan(model, seed=11), batch.microscopes[0]
    microscope.reset()
    chosen: list[np.ndarray] = []
    reconstruction = None
    for step in range(3):
        acquired = microscope.to_unit(microscope.recorded[np.concatenate(chosen)]) if chosen else np.empty((0, 2))
        proposal = strategy.next_positions(ScanState(acquired, reconstruction, step, batch.region), 10)
        chosen.append(microscope.nearest_unused(microscope.to_angstrom(proposal)))
        reconstruction = reconstruct_batch(batch, [np.concatenate(chosen)], 5)[0]
    np.testing.assert_array_equal(np.concatenate(chosen), expected)


def test_after_a_fallback_the_policy_conditions_on_what_was_measured():
    """The service sends Halton points when a decision is late; the next decision must see
    those positions, not the late means. Step by step with arbitrary acquired sub-sequences
    (never the strategy's own proposals), the decisions equal one teacher-forced pass of the
    GRU over exactly those inputs."""
    torch.manual_seed(5)
    model = AdaptiveModel(ModelSettings.from_preset("tiny")).eval()
    n = model.settings.policy.subsequence
    rng = np.random.default_rng(0)
    region = (slice(4, 36), slice(4, 36))
    reconstructions = [rng.normal(size=(40, 40)) + 1j * rng.normal(size=(40, 40)) for _ in range(3)]
    measured = [rng.random((n, 2)) for _ in range(4)]   # e.g. Halton fallbacks, not the policy's means
    strategy = AdaptiveScan(model, seed=0)
    strategy.next_positions(ScanState(np.empty((0, 2)), None, 0, region), n)
    decisions = []
    for step in range(1, 4):
        acquired = np.concatenate(measured[:step])
        decisions.append(strategy.next_positions(ScanState(acquired, reconstructions[step - 1], step, region), n))
    with torch.no_grad():
        latents = model.encode(torch.as_tensor(np.stack(reconstructions)), region)[None]
        inputs = torch.as_tensor(np.stack(measured[:3]), dtype=torch.float32)[None]
        means, _ = model(inputs, latents)
    np.testing.assert_allclose(np.stack(decisions), means[0].numpy(), atol=1e-6)
