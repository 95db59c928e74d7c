"""Shared fixtures: tiny seeded geometries and recordings (seconds, not minutes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from service_helpers import Server, Wire

from scan_server.contracts import (
    Acquisition,
    ObjectGrid,
    ProbeOptics,
    RasterScan,
    SamplingGeometry,
)
from scan_server.io.canonical import read_recording
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.policy.model import AdaptiveModel, ModelSettings
from scan_server.policy.model_folder import ModelFolder
from scan_server.policy.value_map import ValueMapSettings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def optics() -> ProbeOptics:
    return ProbeOptics(energy_ev=60e3, semiangle_mrad=33.0, c10_angstrom=-8.0, c30_angstrom=2e4)


@pytest.fixture
def small_geometry() -> SamplingGeometry:
    """32-px detector at the paper's reciprocal sampling: 0.66 Å pixels, 10.5 Å window."""
    return SamplingGeometry(detector_px=32, detector_sampling_inv_angstrom=0.04759)


@pytest.fixture
def small_scan() -> RasterScan:
    return RasterScan(shape=(6, 5), step_angstrom=0.9)


@pytest.fixture
def small_grid(small_scan: RasterScan, small_geometry: SamplingGeometry) -> ObjectGrid:
    return ObjectGrid.covering(small_scan.positions_angstrom(), small_geometry)


@pytest.fixture
def random_object(small_grid: ObjectGrid) -> torch.Tensor:
    """A smooth random complex potential (phase ≤ ~0.5 rad, weak absorption), (1, H, W)."""
    generator = torch.Generator().manual_seed(3)
    shape = small_grid.shape_px
    phase = torch.nn.functional.avg_pool2d(torch.rand((1, 1, *shape), generator=generator, dtype=torch.float64),
                                           3, 1, 1)[0]
    absorption = 0.05 * torch.rand((1, *shape), generator=generator, dtype=torch.float64)
    return (phase + 1j * absorption).to(torch.complex128)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---- the scan service (tests/service, tests/client): a real server subprocess ----------

@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/tiny: a randomly initialised tiny model (10 positions per step) with a value map."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tiny = ModelSettings.from_preset("tiny")
    model = AdaptiveModel(ModelSettings(tiny.preset, tiny.encoder, tiny.policy, ValueMapSettings(map_px=32)))
    ModelFolder(folder / "tiny").save(model, {"name": "tiny", "settings": model.settings.as_dict()})
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
