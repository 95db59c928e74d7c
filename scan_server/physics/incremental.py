"""Warm-started, incremental ROP: a scan session's reconstruction carried from step to step.

From scratch, the reconstruction before step k costs ``iterations`` passes over all k·n
patterns acquired so far, and the work grows with every step. Here each data set keeps its
estimate V, its patterns (on the device), its probe windows and its sub-pixel shifted probes;
a step then costs

- ``local_iterations`` passes over the *new* patterns alone, preconditioned by their own
  illumination Q_new (as if the new sub-sequence were a data set of its own, started from the
  current estimate: the new area is filled in at full step size), then
- ``global_iterations`` passes over everything acquired, preconditioned by the whole
  illumination Q (the update of ``reconstruct.py``), which reconciles the new patterns with
  the old ones;

and the first step (no estimate yet) is the from-scratch reconstruction with
``first_iterations`` (so it equals ``reconstruct_sets`` of the same data).

Batched: ``advance`` steps any number of data sets that share the object grid and the
detector geometry in one ROP call per phase; data sets do not interact, so each result
equals the one it gets alone (the service uses this to decide sessions together).

Normalisation as in ``reconstruct.py``: patterns are divided by the incident electrons per
pattern estimated from everything the data set acquired so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..contracts import ObjectGrid, ProbeOptics, SamplingGeometry
from ..errors import GeometryError, ParameterError
from .detector_correction import DetectorCorrection, tilt
from .forward import WindowPlan, accumulate_windows, detector_intensity, in_fft_order, window_flat_index
from .probe import probe_real, shifted_probes
from .reconstruct import ChunkCache, RopBatch, RopSettings, batch_psf_px, reconstruct


@dataclass(frozen=True)
class WarmStartSettings:
    """Iterations of one step: ``first_iterations`` from zero when a data set has no estimate
    yet (the paper's 5), else ``local_iterations`` over the new patterns and
    ``global_iterations`` over all of them. ``rop``: step size, floor, chunking and the size up
    to which a data set's shifted probes are kept on the device (``cache_bytes``)."""

    first_iterations: int = 5
    local_iterations: int = 2
    global_iterations: int = 1
    rop: RopSettings = RopSettings()

    def __post_init__(self) -> None:
        for name in ("first_iterations", "local_iterations", "global_iterations"):
            if getattr(self, name) < 0:
                raise ParameterError(f"{name} must be ≥ 0, got {getattr(self, name)}")


class IncrementalReconstruction:
    """One data set (a session): its patterns, windows, shifted probes, illumination and
    current estimate, on the device.

    ``add`` takes each new sub-sequence; ``advance([...])`` brings the estimates up to date.
    ``potential``: (H, W) complex64, the estimate from the first ``done`` patterns. Kept per
    pattern: the counts (M × M float32) and, while within ``settings.rop.cache_bytes``, the
    shifted probe and the pattern in FFT order (N × N complex64 + float32); past that they are
    made again in each pass, as from scratch.
    """

    def __init__(self, optics: ProbeOptics, grid: ObjectGrid, geometry: SamplingGeometry,
                 device: torch.device, settings: WarmStartSettings = WarmStartSettings()) -> None:
        self.grid, self.geometry, self.device, self.settings = grid, geometry, device, settings
        self.optics = optics
        self.correction: DetectorCorrection | None = None
        self.probe = probe_real(optics, geometry, device).to(torch.complex64)
        self.probe_on_detector = float(detector_intensity(self.probe[None], geometry).sum())
        m, n = geometry.detector_px, geometry.window_px
        self._counts = _Growing((m, m), torch.float32, device)
        self.total_counts = 0.0
        self.lit_count = 0
        self._corner_px = _Growing((2,), torch.long, device)
        self._fraction_px = _Growing((2,), torch.float64, device)
        self._positions = _Growing((2,), torch.float64, device)
        self._lit = _Growing((), torch.bool, device)
        self.kept: _Kept | None = _Kept(n, device) if geometry.upsample == 1 else None
        self.light = torch.zeros(grid.shape_px, dtype=torch.float32, device=device)
        self.potential = torch.zeros(grid.shape_px, dtype=torch.complex64, device=device)
        self.done = 0

    @property
    def count(self) -> int:
        """Patterns added so far."""
        return self._counts.count

    @property
    def counts(self) -> torch.Tensor:
        """(n, M, M) the recorded counts."""
        return self._counts.view

    @property
    def corner_px(self) -> torch.Tensor:
        return self._corner_px.view

    @property
    def fraction_px(self) -> torch.Tensor:
        return self._fraction_px.view

    @property
    def electrons(self) -> float:
        """Incident electrons per pattern, estimated from every pattern added with the beam on
        (background off, when corrected)."""
        return self.total_counts / max(self.lit_count, 1) / self.probe_on_detector

    def patterns(self, start: int) -> torch.Tensor:
        """(n, M, M) the counts of patterns ``start:`` as the forward model sees them (corrected)."""
        counts = self.counts[start:]
        return self.correction.clean_tensor(counts) if self.correction is not None else counts

    def descan_px(self, start: int) -> torch.Tensor | None:
        """(n, 2) the disc centres of patterns ``start:`` off the nominal one (``None``: uncorrected)."""
        if self.correction is None:
            return None
        positions = self._positions.view[start:].cpu().numpy()
        return torch.as_tensor(self.correction.descan_px(positions), device=self.device)

    def lit(self, start: int) -> torch.Tensor:
        return self._lit.view[start:]

    def _prepared(self, counts: torch.Tensor, positions: np.ndarray, plan: WindowPlan
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For new counts (n, M, M) at positions (n, 2) Å: the tilted shifted probes (n, N, N), the
        corrected counts (n, M, M) and which frames had the beam (n,)."""
        shifted = shifted_probes(self.probe, plan.fraction_px)
        if self.correction is None:
            return shifted, counts, torch.ones(len(counts), dtype=torch.bool, device=self.device)
        lit = torch.as_tensor(self.correction.lit(counts.cpu().numpy()), device=self.device)
        descan = torch.as_tensor(self.correction.descan_px(positions), device=self.device)
        shifted = shifted * tilt(descan, lit, self.geometry, shifted.dtype)
        return shifted, self.correction.clean_tensor(counts), lit

    def set_correction(self, correction: DetectorCorrection | None) -> None:
        """Reconstruct from now on with the detector's corrections (``detector_correction``): the
        probe with the measured aperture, every pattern's descan tilt, background and bad pixels
        corrected, blanked frames left out; what is kept per pattern is made again (the
        estimate carries on)."""
        self.correction = correction
        optics = correction.optics(self.optics) if correction is not None else self.optics
        self.probe = probe_real(optics, self.geometry, self.device).to(torch.complex64)
        self.probe_on_detector = float(detector_intensity(self.probe[None], self.geometry).sum())
        self.light = torch.zeros(self.grid.shape_px, dtype=torch.float32, device=self.device)
        counts, positions = self.counts, self._positions.view.cpu().numpy()
        self.kept = _Kept(self.geometry.window_px, self.device) if self.kept is not None else None
        self.total_counts, self.lit_count = 0.0, 0
        lit_all = []
        plan = WindowPlan(torch.zeros(len(counts), dtype=torch.long, device=self.device), self.corner_px,
                          self.fraction_px)
        for start in range(0, len(counts), self.settings.rop.chunk_positions):
            stop = start + self.settings.rop.chunk_positions
            part = plan.chunk(start, stop)
            shifted, cleaned, lit = self._prepared(counts[start:stop], positions[start:stop], part)
            self._account(shifted, cleaned, lit, part)
            lit_all.append(lit)
        self._lit = _Growing((), torch.bool, self.device)
        if lit_all:
            self._lit.append(torch.cat(lit_all))

    def _account(self, shifted: torch.Tensor, cleaned: torch.Tensor, lit: torch.Tensor, plan: WindowPlan) -> None:
        """Add prepared patterns to the illumination, the electron count and what is kept."""
        index = window_flat_index(plan, self.grid.shape_px, self.geometry.window_px)
        accumulate_windows(self.light, index, shifted.abs() ** 2)
        self.total_counts += float(cleaned[lit].sum(dtype=torch.float64))
        self.lit_count += int(lit.sum())
        if self.kept is not None:
            if (self.kept.count + len(shifted)) * self.geometry.window_px**2 * 12 > self.settings.rop.cache_bytes:
                self.kept = None          # past the budget: made again in each pass, as from scratch
            else:
                self.kept.extend(shifted, cleaned)

    def add(self, frames: np.ndarray, positions_angstrom: np.ndarray) -> None:
        """Append a sub-sequence: frames (n, M, M) counts, positions (n, 2) Å."""
        frames = np.asarray(frames, dtype=np.float32)
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        m = self.geometry.detector_px
        if frames.ndim != 3 or frames.shape[1:] != (m, m):
            raise GeometryError(f"frames must be (n, {m}, {m}), got {frames.shape}")
        if len(frames) != len(positions):
            raise ParameterError(f"{len(frames)} frames but {len(positions)} positions")
        plan = WindowPlan.for_positions(self.grid, self.geometry, positions, device=self.device)
        counts = torch.as_tensor(frames).to(self.device)
        shifted, cleaned, lit = self._prepared(counts, positions, plan)
        self._counts.append(counts)
        self._corner_px.append(plan.corner_px)
        self._fraction_px.append(plan.fraction_px)
        self._positions.append(torch.as_tensor(positions, device=self.device))
        self._lit.append(lit)
        self._account(shifted, cleaned, lit, plan)

    def restore(self, potential: np.ndarray, done: int) -> None:
        """Continue from a stored estimate (H, W) of the first ``done`` patterns (a resumed session)."""
        if potential.shape != self.grid.shape_px or not 0 <= done <= self.count:
            raise ParameterError(f"stored estimate {potential.shape} of {done} patterns does not fit "
                                 f"{self.grid.shape_px} with {self.count} patterns")
        self.potential = torch.as_tensor(potential, dtype=torch.complex64).to(self.device)
        self.done = done


class _Growing:
    """A tensor that grows along its first axis without copying what it holds on every append
    (capacity doubles); ``view``: the (n, ...) filled part."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
        self.buffer = torch.empty((16, *shape), dtype=dtype, device=device)
        self.count = 0

    @property
    def view(self) -> torch.Tensor:
        return self.buffer[:self.count]

    def append(self, values: torch.Tensor) -> None:
        need = self.count + len(values)
        if need > len(self.buffer):
            grown = torch.empty((max(need, 2 * len(self.buffer)), *self.buffer.shape[1:]),
                                dtype=self.buffer.dtype, device=self.buffer.device)
            grown[:self.count] = self.view
            self.buffer = grown
        self.buffer[self.count:need] = values
        self.count = need


class _Kept:
    """Per pattern, kept from step to step: shifted probes (n, N, N) complex64 and counts in FFT
    order (n, N, N) float32 with the detector's mask (N, N) (``None``: it sees all N × N)."""

    def __init__(self, window_px: int, device: torch.device) -> None:
        self.window_px = window_px
        self._shifted = _Growing((window_px, window_px), torch.complex64, device)
        self._ordered = _Growing((window_px, window_px), torch.float32, device)
        self.seen: torch.Tensor | None = None

    @property
    def count(self) -> int:
        return self._shifted.count

    @property
    def shifted(self) -> torch.Tensor:
        return self._shifted.view

    @property
    def ordered(self) -> torch.Tensor:
        return self._ordered.view

    def extend(self, shifted: torch.Tensor, counts: torch.Tensor) -> None:
        ordered, self.seen = in_fft_order(counts, self.window_px)
        self._shifted.append(shifted)
        self._ordered.append(ordered)


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    """The parts concatenated (one part: itself, not copied)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _batch(sets: Sequence[IncrementalReconstruction], starts: Sequence[int], settings: RopSettings,
           whole: bool) -> tuple[RopBatch, ChunkCache]:
    """One ROP batch of patterns ``start:`` of each data set, with what the sets keep (their
    illumination too when ``whole``: every pattern of every set is in the batch)."""
    first = sets[0]
    scale = [1.0 / s.electrons if s.electrons > 0 else float("nan") for s in sets]
    if not all(np.isfinite(scale)):
        raise ParameterError("a data set's patterns hold no counts")
    batch_index = torch.cat([torch.full((s.count - a,), b, dtype=torch.long, device=first.device)
                             for b, (s, a) in enumerate(zip(sets, starts))])
    plan = WindowPlan(batch_index, _joined([s.corner_px[a:] for s, a in zip(sets, starts)]),
                      _joined([s.fraction_px[a:] for s, a in zip(sets, starts)]))
    light = torch.stack([s.light for s in sets]) if whole else None
    kept = [s.kept for s in sets]
    psf = batch_psf_px([s.correction for s in sets], first.device)
    if any(k is None for k in kept):
        patterns = torch.cat([s.patterns(a) * c for s, a, c in zip(sets, starts, scale)])
        descan = [s.descan_px(a) for s, a in zip(sets, starts)]
        descan_px = torch.cat([d if d is not None else torch.zeros((s.count - a, 2), dtype=torch.float64,
                                                                   device=first.device)
                               for d, s, a in zip(descan, sets, starts)])
        batch = RopBatch(patterns, plan, torch.stack([s.probe for s in sets]), first.grid.shape_px, len(sets),
                         first.geometry, descan_px, torch.cat([s.lit(a) for s, a in zip(sets, starts)]), psf)
        return batch, ChunkCache(batch, settings, light=light)
    batch = RopBatch(None, plan, torch.stack([s.probe for s in sets]), first.grid.shape_px, len(sets),
                     first.geometry, psf_px=psf)
    shifted = _joined([k.shifted[a:] for k, a in zip(kept, starts)])
    measured = torch.cat([k.ordered[a:] * c for k, a, c in zip(kept, starts, scale)])
    return batch, ChunkCache(batch, settings, shifted, (measured, kept[0].seen), light)


def _descend(sets: Sequence[IncrementalReconstruction], starts: Sequence[int], iterations: int,
             settings: RopSettings, initial: bool) -> None:
    """``iterations`` steps over patterns ``start:`` of each set, from its estimate (or zero)."""
    if iterations == 0 or not sets:
        return
    batch, cache = _batch(sets, starts, settings, whole=not any(starts))
    start = torch.stack([s.potential for s in sets]) if initial else None
    potential = reconstruct(batch, replace(settings, iterations=iterations), start, cache=cache)
    for s, v in zip(sets, potential):
        s.potential = v


def advance(sets: Sequence[IncrementalReconstruction]) -> list[torch.Tensor]:
    """Bring every data set's estimate up to date with the patterns added since its last step
    (all of them share the grid shape and detector geometry; their settings: the first's).
    A set whose patterns hold no counts at all (a blanked beam) has nothing to fit and keeps
    its estimate (zero) until counts arrive. Returns each set's estimate (H, W) complex64, in order."""
    if not sets:
        return []
    first = sets[0]
    if any(s.grid.shape_px != first.grid.shape_px or s.geometry != first.geometry for s in sets):
        raise GeometryError("data sets reconstructed together must share the grid shape and the geometry")
    settings = first.settings
    measured = [s for s in sets if s.total_counts > 0]   # no counts yet (a blanked beam): nothing to fit
    fresh = [s for s in measured if s.done == 0 and s.count > 0]
    warm = [s for s in measured if 0 < s.done < s.count]
    _descend(fresh, [0] * len(fresh), settings.first_iterations, settings.rop, initial=False)
    _descend(warm, [s.done for s in warm], settings.local_iterations, settings.rop, initial=True)
    _descend(warm, [0] * len(warm), settings.global_iterations, settings.rop, initial=True)
    for s in (*fresh, *warm):
        s.done = s.count
    return [s.potential for s in sets]
