"""One rollout code path for training (pretraining, imitation, REINFORCE) and evaluation.

``rollout`` plays a batch of episodes on virtual microscopes: the first sub-sequence
follows a Halton sequence; after every sub-sequence the patterns acquired so far are
reconstructed (ROP, batched over the episodes), encoded, and the GRU proposes the next
sub-sequence: its means (evaluation), Gaussian samples around them (REINFORCE), or a
teacher's positions (pretraining: the Halton continuation; imitation: the value map, asked
at the states the student visits, followed with a probability that decays — DAgger). Each
decision is ``policy.step.encode_and_decide``, the same as the service's; the microscope
snaps each proposal to the nearest unused recorded pattern.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .contracts import Acquisition, ObjectGrid, SamplingGeometry
from .physics.detector_correction import DetectorCorrection
from .physics.detector_signals import DarkFieldMeter, acquisition_nominal_radius_px, recording_correction_or_none
from .physics.reconstruct import reconstruct_sets, reconstruction_geometry
from .policy.model import AdaptiveModel
from .policy.step import encode_and_decide
from .scanning.baselines import halton_unit
from .scanning.state import ScanState
from .scanning.virtual_microscope import Exposure, VirtualMicroscope


@dataclass
class EpisodeBatch:
    """B episodes over recordings that share the detector geometry and scan grid. ``corrections``:
    per recording, the detector's corrections its reconstructions are made with (``None``: the
    metadata's optics and an ideal detector)."""

    acquisitions: list[Acquisition]
    microscopes: list[VirtualMicroscope]
    geometry: SamplingGeometry
    grid: ObjectGrid
    region: tuple[slice, slice]
    device: torch.device
    corrections: list[DetectorCorrection | None] | None = None

    @classmethod
    def over(cls, acquisitions: list[Acquisition], device: torch.device | None = None,
             corrected: bool = False) -> EpisodeBatch:
        """``corrected``: reconstruct with each recording's detector corrections, as the service
        does (``evaluate``; training takes the metadata, for now: a correction costs ~0.5 s a
        recording each time a batch is drawn)."""
        geometry = reconstruction_geometry(acquisitions[0])
        grid = ObjectGrid.covering(acquisitions[0].positions_angstrom, geometry)
        for a in acquisitions[1:]:
            if reconstruction_geometry(a) != geometry or \
                    ObjectGrid.covering(a.positions_angstrom, geometry).shape_px != grid.shape_px:
                raise ValueError("the recordings of one batch must share detector and scan geometry")
        microscopes = [VirtualMicroscope.over(a) for a in acquisitions]
        corrections = [recording_correction_or_none(a, geometry) for a in acquisitions] if corrected else None
        return cls(acquisitions, microscopes, geometry, grid, microscopes[0].field.region(grid),
                   device or torch.device("cpu"), corrections)

    def positions_px(self, positions_angstrom: torch.Tensor) -> torch.Tensor:
        """Å (B, P, 2) → pixel coordinates of the field-of-view crop (centres at integers)."""
        origin = torch.tensor(self.grid.origin_angstrom, dtype=positions_angstrom.dtype)
        start = torch.tensor([self.region[0].start, self.region[1].start], dtype=positions_angstrom.dtype)
        return (positions_angstrom - origin) / self.grid.pixel_size_angstrom - start


@dataclass
class Episodes:
    """positions_angstrom: (B, T, n, 2) visited; indices: (B, T·n) recorded patterns used;
    final: (B, H, W) complex reconstruction. For steps 1…T−1, what the policy saw and did:
    inputs_positions (B, T−1, n, 2) and latents (B, T−1, D), the proposed means, the
    actions taken and the teacher's positions (B, T−1, n, 2) in [0, 1]² (actions = means
    unless sampling or following the teacher; targets empty without a teacher). ``phases``
    (B, T, h, w) rad: with ``keep_phases``, the real part of the reconstruction over the
    field of view after each sub-sequence (the last one is ``final``'s), else empty."""

    positions_angstrom: torch.Tensor
    indices: np.ndarray
    final: torch.Tensor
    inputs_positions: torch.Tensor
    latents: torch.Tensor
    means: torch.Tensor
    actions: torch.Tensor
    targets: torch.Tensor
    phases: torch.Tensor


def reconstruct_batch(batch: EpisodeBatch, indices: list[np.ndarray], iterations: int,
                      device: torch.device | None = None) -> torch.Tensor:
    """ROP of every episode from the given recorded patterns (read in the given order)."""
    frames = [np.asarray(a.frames[i]) for a, i in zip(batch.acquisitions, indices)]
    positions = [a.positions_angstrom[i] for a, i in zip(batch.acquisitions, indices)]
    return reconstruct_sets(frames, positions, [a.optics for a in batch.acquisitions], batch.grid, batch.geometry,
                            iterations, device, batch.corrections)


class Acquired:
    """What one episode's microscope returned so far, sub-sequence by sub-sequence; each
    step's reconstruction uses these frames instead of reading the recording again. With a
    dark-field meter it also meters each pattern's calibrated dark-field fraction, as a
    session of the service does."""

    def __init__(self, meter: DarkFieldMeter | None = None) -> None:
        self.exposures: list[Exposure] = []
        self.meter = meter

    def add(self, exposure: Exposure) -> None:
        self.exposures.append(exposure)
        if self.meter is not None:
            self.meter.add(exposure.frames, exposure.positions_angstrom)

    def state(self, microscope: VirtualMicroscope, step: int) -> ScanState:
        """What a strategy that needs no reconstruction sees of this episode (unit positions,
        dark-field fractions, the field's extent)."""
        return ScanState(microscope.to_unit(self.positions_angstrom), None, step,
                         dark_field_fraction=self.meter.fractions if self.meter is not None else None,
                         extent_angstrom=microscope.field.extent_angstrom)

    @property
    def frames(self) -> np.ndarray:
        return np.concatenate([e.frames for e in self.exposures])

    @property
    def positions_angstrom(self) -> np.ndarray:
        return np.concatenate([e.positions_angstrom for e in self.exposures])

    @property
    def indices(self) -> np.ndarray:
        return np.concatenate([e.indices for e in self.exposures])

    @property
    def last(self) -> np.ndarray:
        return self.exposures[-1].positions_angstrom


def reconstruct_episodes(batch: EpisodeBatch, acquired: list[Acquired], iterations: int) -> torch.Tensor:
    """ROP of every episode from the patterns it acquired so far, (B, H, W) complex."""
    return reconstruct_sets([a.frames for a in acquired], [a.positions_angstrom for a in acquired],
                            [a.optics for a in batch.acquisitions], batch.grid, batch.geometry, iterations,
                            batch.device, batch.corrections)


Teacher = Callable[[int, list[ScanState]], torch.Tensor]


def halton_teacher(n: int, seeds: list[int]) -> Teacher:
    """The Halton continuation of each episode's sequence (the Halton scan as a teacher: pretraining's
    targets, REINFORCE's Halton baseline): at step t its points t·n … t·n + n − 1."""
    def continuation(t: int, states: object) -> torch.Tensor:
        return torch.stack([torch.as_tensor(halton_unit(n, seed, skip=t * n)) for seed in seeds])

    return continuation


@torch.no_grad()
def rollout(batch: EpisodeBatch, model: AdaptiveModel, steps: int, halton_seeds: list[int],
            sample: bool = False, generator: torch.Generator | None = None, iterations: int = 5,
            final_iterations: int | None = None, teacher: Teacher | None = None,
            follow_teacher: float = 1.0, keep_phases: bool = False, sample_from: int = 1,
            mirrored: bool = False) -> Episodes:
    """Play ``steps`` sub-sequences on every microscope of the batch (which are reset).

    Sampled actions are Gaussian around the means (σ of the policy settings) from sub-sequence
    ``sample_from`` + 1 on (the means before: REINFORCE's vine branches share the state up to
    there); ``mirrored`` gives consecutive episode pairs opposite deviations (ε, −ε; an even
    batch). The microscope clips them to the field of view. A ``teacher`` (step t and each episode's
    state → positions (B, n, 2) in [0, 1]²) is asked at every state; each episode acquires
    the teacher's positions with probability ``follow_teacher`` (1: pretraining's Halton
    continuation; less: DAgger), else the policy's; the teacher's are recorded as the
    targets. No gradient is kept: training recomputes the means from the recorded inputs in
    one pass (``AdaptiveModel.forward``). ``final_iterations`` 0 skips the final reconstruction
    (``keep_phases`` needs it)."""
    n = model.settings.policy.subsequence
    acquired = [Acquired(DarkFieldMeter(acquisition_nominal_radius_px(a)) if teacher else None)
                for a in batch.acquisitions]
    for microscope, episode, seed in zip(batch.microscopes, acquired, halton_seeds):
        microscope.reset()
        episode.add(microscope.acquire(microscope.to_angstrom(halton_unit(n, seed))))
    hidden = None
    inputs, latents, all_means, all_actions, targets, phases = [], [], [], [], [], []
    for t in range(1, steps):
        last = torch.stack([torch.as_tensor(m.to_unit(e.last), dtype=torch.float32)
                            for m, e in zip(batch.microscopes, acquired)]).to(batch.device)
        reconstruction = reconstruct_episodes(batch, acquired, iterations)
        if keep_phases:
            phases.append(reconstruction.real[:, batch.region[0], batch.region[1]].float().cpu())
        step = encode_and_decide(model, reconstruction, batch.region, last, hidden)
        hidden, latent, means = step.hidden, step.latent, step.means.cpu()
        if sample and t >= sample_from:
            noise = torch.randn(means.shape, generator=generator)
            if mirrored:
                noise[1::2] = -noise[0::2]
            actions = means + model.settings.policy.sigma * noise
        else:
            actions = means
        if teacher is not None:
            target = teacher(t, [e.state(m, t) for m, e in zip(batch.microscopes, acquired)]).to(torch.float32)
            follow = (torch.rand(len(acquired), generator=generator) < follow_teacher if 0 < follow_teacher < 1
                      else torch.full((len(acquired),), follow_teacher >= 1))
            actions = torch.where(follow[:, None, None], target, actions)
            targets.append(target)
        for b, (microscope, episode) in enumerate(zip(batch.microscopes, acquired)):
            episode.add(microscope.acquire(microscope.to_angstrom(actions[b].numpy())))
        inputs.append(last.cpu())
        latents.append(latent.cpu())
        all_means.append(means)
        all_actions.append(actions)
    final_iterations = iterations if final_iterations is None else final_iterations
    final = reconstruct_episodes(batch, acquired, final_iterations) if final_iterations else torch.empty(0)
    if keep_phases:
        if not final_iterations:
            raise ValueError("keep_phases needs the final reconstruction (final_iterations > 0)")
        phases.append(final.real[:, batch.region[0], batch.region[1]].float().cpu())
    taken = [e.indices for e in acquired]
    positions = torch.stack([torch.as_tensor(e.positions_angstrom.reshape(steps, n, 2)) for e in acquired])
    empty = torch.empty(len(taken), 0, n, 2)

    def stacked(items: list[torch.Tensor], fallback: torch.Tensor) -> torch.Tensor:
        return torch.stack(items, dim=1) if items else fallback

    return Episodes(positions_angstrom=positions, indices=np.stack(taken), final=final,
                    inputs_positions=stacked(inputs, empty), latents=stacked(latents, torch.empty(len(taken), 0, 0)),
                    means=stacked(all_means, empty), actions=stacked(all_actions, empty),
                    targets=stacked(targets, empty), phases=stacked(phases, torch.empty(len(taken), 0, 0, 0)))
