from pathlib import Path

import numpy as np
import pytest

from scan_server.contracts import Acquisition, ProbeOptics, RasterScan

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
def sample_acquisition() -> Acquisition:
    """A small in-memory raster recording (6 × 7 positions, 16 px patterns)."""
    rng = np.random.default_rng(11)
    scan = RasterScan((6, 7), 0.25)
    frames = rng.integers(0, 900, (42, 16, 16)).astype(np.uint16)
    return Acquisition(frames=frames, positions_angstrom=scan.positions_angstrom(),
                       optics=ProbeOptics(80e3, 25.0, c10_angstrom=-12.0, c30_angstrom=0.0),
                       detector_px=16, detector_sampling_inv_angstrom=0.06, scan=scan, electrons_per_pattern=1e5)


@pytest.fixture
def data_dir() -> Path:
    return DATA
