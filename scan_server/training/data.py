"""Training recordings: every supported recording in a folder, opened lazily."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..contracts import Acquisition
from ..errors import ParameterError
from ..io.open import open_recording
from ..physics.simulate import training_physics


def recording_paths(folder: Path) -> list[Path]:
    """Recordings in ``folder`` (canonical/Nion .h5, .ndata, .emd, Dectris masters; not
    Dectris data files, partial or staging files), sorted by name."""
    if not folder.is_dir():
        raise ParameterError(f"{folder}: no such folder of training recordings")
    paths = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith(".") or "_data_0" in name or name.endswith(".partial"):
            continue
        if path.suffix in (".h5", ".ndata", ".emd", ".hdf5"):
            paths.append(path)
    if not paths:
        raise ParameterError(f"{folder}: no recordings found (simulate some with `scan-server simulate`)")
    return paths


def data_hash(paths: list[Path]) -> str:
    """sha256 over the names, sizes and first MiB of every recording (a cheap fingerprint)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(str(path.stat().st_size).encode())
        with path.open("rb") as f:
            digest.update(f.read(1 << 20))
    return digest.hexdigest()


class TrainingData:
    """The recordings of a folder; ``rank`` and ``world`` split them between DDP processes."""

    def __init__(self, folder: Path, rank: int = 0, world: int = 1, device: torch.device | None = None) -> None:
        self.folder = folder
        self.device = device or torch.device("cpu")
        self.paths = recording_paths(folder)
        self.hash = data_hash(self.paths)
        mine = self.paths[rank::world] or self.paths
        self.acquisitions: list[Acquisition] = [open_recording(p) for p in mine]

    def describe(self) -> dict:
        first = self.acquisitions[0]
        geometry = {"detector_px": first.detector_px,
                    "detector_sampling_inv_angstrom": first.detector_sampling_inv_angstrom,
                    "energy_ev": first.optics.energy_ev, "semiangle_mrad": first.optics.semiangle_mrad,
                    "field_of_view_angstrom": np.ptp(first.positions_angstrom, axis=0).tolist()}
        return {"folder": str(self.folder), "recordings": [p.name for p in self.paths], "sha256": self.hash,
                "geometry": geometry, "physics": training_physics(self.acquisitions)}

    def sample(self, rng: np.random.Generator, count: int) -> list[Acquisition]:
        return [self.acquisitions[i] for i in rng.integers(0, len(self.acquisitions), count)]
