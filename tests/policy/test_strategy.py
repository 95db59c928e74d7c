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
