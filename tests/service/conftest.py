"""Fixtures of the service tests: a real server process on loopback with free ports, a tiny
model and a small recording."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from service_helpers import Server, Wire

from scan_server.contracts import Acquisition
from scan_server.io.canonical import read_recording
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.training.run import save_model


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/tiny: a randomly initialised tiny model (10 positions per step)."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = AdaptiveModel(ModelSettings.from_preset("tiny"))
    save_model(folder / "tiny", model, {"name": "tiny", "settings": model.settings.as_dict()})
    return folder


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Acquisition:
    """A 16 × 16-position MoS2 recording (64-px detector)."""
    path = tmp_path_factory.mktemp("recording") / "small.h5"
    simulate_recording(preset("small", scan_shape=(16, 16)), 3, path, progress=False)
    return read_recording(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    """One server for a module's tests (1 MiB message limit, so oversize is cheap to test)."""
    root = tmp_path_factory.mktemp("server")
    running = Server(root / "sessions", models_dir, env={"SCAN_SERVER_MAX_MESSAGE_BYTES": str(2**20)}).start()
    yield running
    running.stop()


@pytest.fixture
def wire(server: Server) -> Iterator[Wire]:
    w = Wire(server.endpoint)
    yield w
    w.close()
