import pytest
import torch

from scan_server.policy.encoder import ENCODER_PRESETS, ConvAutoencoder, prepare_input
from scan_server.policy.recurrent import POLICY_PRESETS, ScanPolicy


@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_autoencoder_shapes_mirror(preset):
    settings = ENCODER_PRESETS[preset]
    model = ConvAutoencoder(settings)
    images = torch.randn(3, 2, settings.input_px, settings.input_px)
    assert model(images).shape == images.shape
    assert model.encode(images).shape == (3, settings.latent_dim)


def test_paper_autoencoder_has_the_papers_layers():
    settings = ENCODER_PRESETS["paper"]
    assert settings.input_px == 512 and settings.channels == (16, 32, 64, 128, 256, 512)
    convs = [m for m in ConvAutoencoder(settings).encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 6 and all(c.stride == (2, 2) for c in convs)


def test_input_is_standardised_per_channel():
    potential = torch.randn(2, 40, 40, dtype=torch.complex64) * 3 + 1
    images = prepare_input(potential, (slice(5, 35), slice(5, 35)), 16)
    assert images.shape == (2, 2, 16, 16)
    torch.testing.assert_close(images.mean(dim=(-2, -1)), torch.zeros(2, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(images.std(dim=(-2, -1)), torch.ones(2, 2), atol=1e-5, rtol=0)


def test_policy_shapes_range_and_log_prob():
    settings = POLICY_PRESETS["tiny"]
    policy = ScanPolicy(settings, latent_dim=20)
    positions = torch.rand(4, 3, settings.subsequence, 2)
    latents = torch.randn(4, 3, 20)
    means, hidden = policy(positions, latents)
    assert means.shape == (4, 3, settings.subsequence, 2) and hidden.shape == (settings.layers, 4, settings.hidden)
    assert means.min() >= 0 and means.max() <= 1
    # one call over the sequence equals stepping with the hidden state carried
    state, stepped = None, []
    for t in range(3):
        step_means, state = policy(positions[:, t:t + 1], latents[:, t:t + 1], state)
        stepped.append(step_means)
    torch.testing.assert_close(torch.cat(stepped, dim=1), means)
    # log-density of a 2-D isotropic Gaussian
    normal = torch.distributions.Normal(means, settings.sigma)
    actions = means + 0.01
    torch.testing.assert_close(policy.log_prob(actions, means), normal.log_prob(actions).sum(dim=-1))


def test_a_model_folder_round_trips_and_its_card_is_parsed_once(tmp_path):
    """ModelFolder: save → load gives the same weights and a typed card; a tampered card or a
    folder that is not one are clear errors."""
    import json

    from scan_server.errors import ParameterError
    from scan_server.policy.model import AdaptiveModel, ModelSettings
    from scan_server.policy.model_folder import ModelFolder

    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    geometry = {"detector_px": 64, "detector_sampling_inv_angstrom": 0.04759, "energy_ev": 6e4,
                "semiangle_mrad": 33.0, "field_of_view_angstrom": [19.8, 19.8]}
    folder = ModelFolder(tmp_path / "m")
    folder.save(model, {"name": "m", "settings": model.settings.as_dict(), "data": {"geometry": geometry}})
    loaded, card = folder.load()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert card.name == "m" and card.settings == model.settings
    assert card.training_geometry.field_of_view_angstrom == (19.8, 19.8) and card.weights_sha256 is None
    folder.card_path.write_text(json.dumps({"name": "m"}))
    with pytest.raises(ParameterError, match="not a valid model card"):
        folder.load()
    with pytest.raises(ParameterError, match="not a model folder"):
        ModelFolder(tmp_path / "nothing").load()
