"""Stage ``value-map``: supervised training of the value map (``policy/value_map.py``).

Each step draws ``batch`` training recordings (simulations with a ground truth) and on each
a partial scan of a random size in ``positions_range`` — a Halton scan of a random seed, a
uniformly random one, or a Halton scan that skips the true vacuum (the states a value map
that works will visit) — and reconstructs them (ROP, ``rop_iterations``, batched). The label
of a scan is where its reconstruction is still wrong, over the material only:

    e(r) = ½ (z_rec(r) − z_true(r))² · material(r),

z the phase standardised over the material (so Σ e / N_material = 1 − Pearson r, the
yardstick's headline score), spread over a probe-sized neighbourhood (Gaussian σ = 1 Å),
resampled to the map and divided by its mean over the field. The network sees only the
evidence maps of the scan (``scanning.evidence``) and is fitted by mean squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..contracts import Acquisition, ObjectGrid
from ..errors import ParameterError
from ..evaluation.metrics import resample_to_grid
from ..evaluation.scores import material_mask
from ..physics.detector_signals import recording_dark_field
from ..physics.reconstruct import reconstruct_sets, reconstruction_geometry
from ..policy.model import AdaptiveModel
from ..scanning.acquire import run_strategy
from ..scanning.baselines import HaltonScan, RandomScan
from ..scanning.evidence import evidence_maps
from ..scanning.oracle import OracleMaterialScan
from ..scanning.virtual_microscope import VirtualMicroscope
from .data import TrainingData
from .run import StageState
from .settings import TrainSettings

#: the label's spread: about a probe radius, in Å
LABEL_SIGMA_ANGSTROM = 1.0
#: the kinds of partial scans the labels are made on
SCAN_KINDS = ("halton", "random", "material")


@dataclass(frozen=True)
class RecordingTruth:
    """What labels need of one recording, computed once: its grid, the field's pixel region,
    the true phase over the region (h, w) rad, the true material mask (h, w), the dark-field
    fraction of every pattern (N,) and a virtual microscope over its positions."""

    grid: ObjectGrid
    region: tuple[slice, slice]
    truth_rad: np.ndarray
    material: np.ndarray
    dark_field: np.ndarray
    microscope: VirtualMicroscope

    @classmethod
    def of(cls, acquisition: Acquisition) -> RecordingTruth:
        if acquisition.ground_truth is None:
            raise ParameterError("the value map trains on recordings with a ground truth (simulate them)")
        grid = ObjectGrid.covering(acquisition.positions_angstrom, reconstruction_geometry(acquisition))
        microscope = VirtualMicroscope(acquisition.positions_angstrom)
        region = microscope.field.region(grid)
        truth = resample_to_grid(acquisition.ground_truth, grid)[region]
        return cls(grid, region, truth, material_mask(truth, grid.pixel_size_angstrom),
                   recording_dark_field(acquisition), microscope)

    def material_at_unit(self, unit: np.ndarray) -> np.ndarray:
        pixel = np.rint(np.asarray(unit) * (np.asarray(self.material.shape) - 1)).astype(np.int64)
        return self.material[pixel[:, 0], pixel[:, 1]]


def partial_scan(truth: RecordingTruth, kind: str, count: int, seed: int) -> np.ndarray:
    """Recorded pattern indices (count,) of a partial scan of that kind."""
    truth.microscope.reset()
    strategy = {"halton": lambda: HaltonScan(seed), "random": lambda: RandomScan(count, seed),
                "material": lambda: OracleMaterialScan(truth.material_at_unit, seed)}[kind]()
    return run_strategy(strategy, truth.microscope, count)


def material_error(reconstruction_rad: np.ndarray, truth_rad: np.ndarray, material: np.ndarray) -> np.ndarray:
    """e (h, w) = ½ (z_rec − z_true)² over the material, 0 elsewhere, z standardised over the
    material: its mean over the material is 1 − Pearson r of the two over the material."""
    def standardised(image: np.ndarray) -> np.ndarray:
        values = image[material]
        return (image - values.mean()) / max(float(values.std()), 1e-12)

    return 0.5 * (standardised(reconstruction_rad) - standardised(truth_rad)) ** 2 * material


def error_label(reconstruction_rad: np.ndarray, truth: RecordingTruth, map_px: int) -> np.ndarray | None:
    """The label map (map_px, map_px) of a reconstruction's phase over the region (h, w) rad
    (module docstring), or ``None`` when the field holds no material or no error."""
    if truth.material.sum() < 2:
        return None
    error = material_error(reconstruction_rad, truth.truth_rad, truth.material)
    error = ndimage.gaussian_filter(error, LABEL_SIGMA_ANGSTROM / truth.grid.pixel_size_angstrom, mode="constant")
    label = ndimage.zoom(error, (map_px / error.shape[0], map_px / error.shape[1]), order=1, grid_mode=True,
                         mode="nearest")
    mean = float(label.mean())
    return label / mean if mean > 0 else None


def make_samples(acquisitions: list[Acquisition], truths: list[RecordingTruth], rng: np.random.Generator,
                 settings: TrainSettings, map_px: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Evidence (B, C, m, m) and labels (B, m, m) of one partial scan per recording."""
    low, high = settings.positions_range
    scans = [partial_scan(t, SCAN_KINDS[rng.integers(len(SCAN_KINDS))], int(rng.integers(low, high + 1)),
                          int(rng.integers(1 << 30))) for t in truths]
    potentials = reconstruct_sets([np.asarray(a.frames[np.sort(i)]) for a, i in zip(acquisitions, scans)],
                                  [a.positions_angstrom[np.sort(i)] for a, i in zip(acquisitions, scans)],
                                  [a.optics for a in acquisitions], truths[0].grid,
                                  reconstruction_geometry(acquisitions[0]), settings.rop_iterations, device)
    evidence, labels = [], []
    for a, t, indices, potential in zip(acquisitions, truths, scans, potentials):
        label = error_label(potential.real.cpu().numpy()[t.region], t, map_px)
        if label is None:
            continue
        unit = t.microscope.to_unit(a.positions_angstrom[indices])
        evidence.append(evidence_maps(unit, t.dark_field[indices], t.microscope.field.extent_angstrom, map_px).maps)
        labels.append(label.astype(np.float32))
    if not labels:
        raise ParameterError("no training recording of this batch shows material")
    return torch.as_tensor(np.stack(evidence), device=device), torch.as_tensor(np.stack(labels), device=device)


def make_step(model: AdaptiveModel, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
              data: TrainingData, settings: TrainSettings):  # type: ignore[no-untyped-def]
    if model.settings.value_map is None:
        raise ParameterError("the model has no value map to train")
    map_px = model.settings.value_map.map_px
    truths: dict[int, RecordingTruth] = {}

    def step(state: StageState) -> dict:
        chosen = state.rng.integers(0, len(data.acquisitions), settings.batch)
        for i in chosen:
            if int(i) not in truths:
                truths[int(i)] = RecordingTruth.of(data.acquisitions[int(i)])
        acquisitions = [data.acquisitions[int(i)] for i in chosen]
        evidence, labels = make_samples(acquisitions, [truths[int(i)] for i in chosen], state.rng, settings, map_px,
                                        data.device)
        predicted = network(evidence)
        loss = ((predicted - labels) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # how well the map ranks places: the correlation of prediction and label over every pixel
        flat_p, flat_l = predicted.detach().flatten(1), labels.flatten(1)
        correlation = torch.stack([torch.corrcoef(torch.stack([p, q]))[0, 1] for p, q in zip(flat_p, flat_l)])
        return {"value_mse": loss.item(), "value_correlation": float(torch.nan_to_num(correlation).mean())}

    return step
