"""ROP: gradient-descent ptychographic reconstruction of a complex potential (paper §II.A).

Loss (paper eq. 2, per data set b): L_b(V) = Σ_p Σ_k (I_p(V)(k) − J_p(k))², with
I_p the forward model of ``forward.py`` and J_p the recorded pattern divided by the
incident electrons per pattern (estimated from the data: mean recorded total divided by
the fraction of the bare probe that falls on the detector), so both sum to ≈ 1.

Update (gradient descent with a diagonal preconditioner, the usual normalisation of
ptychographic gradients): V ← V − α · g(r) / (Q(r) + δ · max Q), where
g = ∂L/∂Re V + i ∂L/∂Im V is the steepest-ascent direction, Q(r) = Σ_p |ψ_p(r)|² the
illumination of pixel r by all positions of that data set, δ = ``illumination_floor``.
Dividing by Q makes the step independent of how many positions overlap a pixel, which
is what lets the same α work for 250 and 10,000 positions and for ragged batches.

Batching: data sets of a batch share the object grid shape; only their measured
(data set, position) pairs are computed — nothing is padded, so a data set's result does
not depend on what else is in the batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..contracts import Acquisition, ObjectGrid, ProbeOptics, SamplingGeometry
from ..device import deterministic
from ..errors import GeometryError, ParameterError
from .detector_correction import DetectorCorrection, blur_fft_order, tilt
from .forward import WindowPlan, accumulate_windows, detector_intensity, in_fft_order, window_flat_index
from .probe import probe_real, shifted_probes


@dataclass(frozen=True)
class RopSettings:
    """iterations: gradient steps (paper: 5). step_size: α in the normalisation above.
    illumination_floor: δ, relative to the brightest pixel. chunk_positions: patterns per
    vectorised chunk (memory ∝ chunk · window²). cache_bytes: shifted probes are cached
    across iterations up to this size. divergence_factor: a loss that grows by more than
    this factor between iterations counts as divergence (see ``reconstruct``)."""

    iterations: int = 5
    step_size: float = 250.0
    illumination_floor: float = 0.05
    chunk_positions: int = 1024
    cache_bytes: int = 1 << 30
    divergence_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ParameterError(f"iterations must be ≥ 0, got {self.iterations}")
        if not self.step_size > 0:
            raise ParameterError(f"step size must be positive, got {self.step_size}")
        if not 0 < self.illumination_floor <= 1:
            raise ParameterError(f"illumination floor must be in (0, 1], got {self.illumination_floor}")
        if self.divergence_factor < 1:
            raise ParameterError(f"divergence factor must be ≥ 1, got {self.divergence_factor}")


#: Many-iteration settings for the full-data ground truth.
GROUND_TRUTH_ITERATIONS = 30


@dataclass
class RopBatch:
    """B data sets prepared for reconstruction.

    patterns: (n, M, M) normalised patterns of all measured (data set, position) pairs, or
    ``None`` when the caller gives them in FFT order through the ``ChunkCache`` (no binning);
    plan: their windows (``plan.batch_index`` says which data set); probes: (B, N, N)
    centred real-space probes (unit norm); object_shape: (H, W) shared by the batch.
    The detector's corrections (``detector_correction``; ``None``: an ideal detector):
    descan_px (n, 2) each pattern's disc centre off the nominal one, lit (n,) bool whether
    its beam was on, psf_px (B,) each data set's point-spread σ in px.
    """

    patterns: torch.Tensor | None
    plan: WindowPlan
    probes: torch.Tensor
    object_shape: tuple[int, int]
    batch_size: int
    geometry: SamplingGeometry
    descan_px: torch.Tensor | None = None
    lit: torch.Tensor | None = None
    psf_px: torch.Tensor | None = None

    def tilted(self, probes: torch.Tensor, start: int) -> torch.Tensor:
        """Shifted probes (n, N, N) of patterns ``start:start+n`` times their descan tilt and beam."""
        if self.descan_px is None or self.lit is None:
            return probes
        stop = start + len(probes)
        return probes * tilt(self.descan_px[start:stop], self.lit[start:stop], self.geometry, probes.dtype)

    def pattern_psf_px(self, start: int, stop: int) -> torch.Tensor | None:
        """The point-spread σ (n,) px of patterns ``start:stop`` (``None`` when no data set has one)."""
        return None if self.psf_px is None else self.psf_px[self.plan.batch_index[start:stop]]

    @property
    def device(self) -> torch.device:
        return self.probes.device


def prepare_batch(frames: Sequence[np.ndarray], positions_angstrom: Sequence[np.ndarray],
                  optics: Sequence[ProbeOptics], grid: ObjectGrid, geometry: SamplingGeometry,
                  device: torch.device | None = None,
                  corrections: Sequence[DetectorCorrection | None] | None = None) -> RopBatch:
    """Build a batch from per-data-set frames (P_b, M, M), positions (P_b, 2) Å and optics;
    P_b may differ between data sets (ragged). ``corrections``: per data set, the detector's
    (``detector_correction``; ``None``: take the metadata and an ideal detector)."""
    if not (len(frames) == len(positions_angstrom) == len(optics)) or not frames:
        raise ParameterError("frames, positions and optics must be non-empty lists of equal length")
    corrections = list(corrections) if corrections is not None else [None] * len(frames)
    if len(corrections) != len(frames):
        raise ParameterError(f"{len(corrections)} detector corrections for {len(frames)} data sets")
    device = device or torch.device("cpu")
    optics = [c.optics(o) if c is not None else o for o, c in zip(optics, corrections)]
    probes = torch.stack([probe_real(o, geometry, device) for o in optics]).to(torch.complex64)
    probe_on_detector = detector_intensity(probes, geometry).sum(dim=(-2, -1))
    patterns, batch_index, all_positions, descan, lit = [], [], [], [], []
    for b, (frame, position, correction) in enumerate(zip(frames, positions_angstrom, corrections)):
        frame = np.asarray(frame, dtype=np.float32)
        position = np.asarray(position, dtype=np.float64).reshape(-1, 2)
        if frame.ndim != 3 or frame.shape[1:] != (geometry.detector_px,) * 2:
            raise GeometryError(f"data set {b}: frames must be (P, {geometry.detector_px}, "
                                f"{geometry.detector_px}), got {frame.shape}")
        if len(frame) != len(position) or len(frame) == 0:
            raise ParameterError(f"data set {b}: {len(frame)} frames but {len(position)} positions")
        beam = correction.lit(frame) if correction is not None else np.ones(len(frame), dtype=bool)
        frame = correction.clean(frame) if correction is not None else frame
        if correction is not None and not beam.any():
            electrons = 1.0   # every frame blanked: every probe is zero, the estimate stays zero
        else:
            electrons = float(frame[beam].sum(axis=(1, 2)).mean()) / float(probe_on_detector[b]) if beam.any() else 0.0
        if not electrons > 0:
            raise ParameterError(f"data set {b}: the patterns hold no counts")
        patterns.append(torch.as_tensor(frame / electrons))
        batch_index.append(np.full(len(frame), b))
        all_positions.append(position)
        descan.append(correction.descan_px(position) if correction is not None else np.zeros((len(frame), 2)))
        lit.append(beam)
    plan = WindowPlan.for_positions(grid, geometry, np.concatenate(all_positions),
                                    np.concatenate(batch_index), device=device)
    corrected = any(c is not None for c in corrections)
    return RopBatch(patterns=torch.cat(patterns).to(device), plan=plan, probes=probes,
                    object_shape=grid.shape_px, batch_size=len(frames), geometry=geometry,
                    descan_px=torch.as_tensor(np.concatenate(descan), device=device) if corrected else None,
                    lit=torch.as_tensor(np.concatenate(lit), device=device) if corrected else None,
                    psf_px=batch_psf_px(corrections, device))


def batch_psf_px(corrections: Sequence[DetectorCorrection | None], device: torch.device) -> torch.Tensor | None:
    """Each data set's point-spread σ (B,) px, ``None`` when none has one (decided once per batch)."""
    psf = [c.psf_px if c is not None else 0.0 for c in corrections]
    return torch.as_tensor(psf, dtype=torch.float32, device=device) if any(psf) else None


class ChunkCache:
    """What every pass over a batch reuses, per chunk of patterns: the sub-pixel shifted probes
    and the patterns in FFT order, kept across iterations while they fit (``cache_bytes``).

    A caller that keeps them from step to step (``incremental``) gives them at once: ``shifted``
    (n, N, N) probes, ``measured`` (n, N, N) patterns in FFT order with the detector's mask
    ``seen`` (``in_fft_order``), ``light`` (B, H, W) the batch's illumination Q."""

    def __init__(self, batch: RopBatch, settings: RopSettings, shifted: torch.Tensor | None = None,
                 measured: tuple[torch.Tensor, torch.Tensor | None] | None = None,
                 light: torch.Tensor | None = None) -> None:
        self.batch, self.chunk = batch, settings.chunk_positions
        n_bytes = batch.plan.count * batch.geometry.window_px**2 * 8
        self.keep = n_bytes <= settings.cache_bytes
        self.shifted, self.given_measured, self.light = shifted, measured, light
        if batch.patterns is None and (measured is None or batch.geometry.upsample != 1):
            raise ParameterError("a batch without centred patterns needs them in FFT order (and no binning)")
        self.store: dict[int, torch.Tensor] = {}
        self.fft_order: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def get(self, start: int) -> torch.Tensor:
        if self.shifted is not None:
            return self.shifted[start:start + self.chunk]
        if start in self.store:
            return self.store[start]
        plan = self.batch.plan.chunk(start, start + self.chunk)
        probes = self.batch.tilted(shifted_probes(self.batch.probes, plan.fraction_px, plan.batch_index), start)
        if self.keep:
            self.store[start] = probes
        return probes

    def measured(self, start: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The chunk's patterns in FFT order and the detector's mask (``in_fft_order``), kept
        while they fit like the probes."""
        if self.given_measured is not None:
            return self.given_measured[0][start:start + self.chunk], self.given_measured[1]
        if start in self.fft_order:
            return self.fft_order[start]
        ordered = in_fft_order(self.batch.patterns[start:start + self.chunk], self.batch.geometry.window_px)
        if self.keep:
            self.fft_order[start] = ordered
        return ordered


def _chunks(batch: RopBatch, chunk: int) -> range:
    return range(0, batch.plan.count, chunk)


def illumination(batch: RopBatch, cache: ChunkCache) -> torch.Tensor:
    """Q(r) = Σ_p |ψ_p(r)|² per data set, (B, H, W) float32 (the cache's, when it was given)."""
    if cache.light is not None:
        return cache.light
    height, width = batch.object_shape
    total = torch.zeros(batch.batch_size * height * width, dtype=torch.float32, device=batch.device)
    for start in _chunks(batch, cache.chunk):
        plan = batch.plan.chunk(start, start + cache.chunk)
        index = window_flat_index(plan, batch.object_shape, batch.geometry.window_px)
        accumulate_windows(total, index, cache.get(start).abs() ** 2)
    return total.reshape(batch.batch_size, height, width)


def loss_and_gradient(potential: torch.Tensor, batch: RopBatch,
                      cache: ChunkCache | None = None, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """L_b (B,) and g = ∂L/∂Re V + i ∂L/∂Im V (B, H, W) for a complex potential (B, H, W).

    Without far-field binning (``upsample`` 1) the gradient is written out (``_chunk_loss_and_gradient``:
    one FFT and one inverse FFT per pattern); with binning it is torch's autograd through the forward
    model (``_chunk_loss_and_gradient_autograd``), the reference the written-out one is tested against."""
    cache = cache or ChunkCache(batch, RopSettings(chunk_positions=chunk))
    dtype = torch.complex128 if potential.dtype == torch.complex128 else torch.complex64
    loss = torch.zeros(batch.batch_size, dtype=torch.float64, device=batch.device)
    transmission = torch.exp(1j * potential.detach()).to(dtype)
    grad_t = torch.zeros(transmission.numel(), dtype=dtype, device=batch.device)
    for start in _chunks(batch, cache.chunk):
        plan = batch.plan.chunk(start, start + cache.chunk)
        index = window_flat_index(plan, batch.object_shape, batch.geometry.window_px)
        probes, windows = cache.get(start).to(dtype), transmission.reshape(-1)[index]
        psf = batch.pattern_psf_px(start, start + len(probes))
        if batch.geometry.upsample == 1:
            per_pattern, window_gradient = _chunk_loss_and_gradient(probes, windows, *cache.measured(start), psf)
        else:
            per_pattern, window_gradient = _chunk_loss_and_gradient_autograd(
                probes, windows, batch.patterns[start:start + cache.chunk], batch.geometry, psf)
        accumulate_windows(grad_t, index, window_gradient)
        loss.index_add_(0, plan.batch_index, per_pattern.to(torch.float64))
    # the gradient of a real loss w.r.t. complex t is ∂L/∂Re t + i ∂L/∂Im t; for the
    # holomorphic t = exp(iV) the chain rule gives g_V = conj(i t) · g_t.
    gradient = torch.conj(1j * transmission) * grad_t.reshape(transmission.shape)
    return loss, gradient.to(potential.dtype)


def _chunk_loss_and_gradient(probes: torch.Tensor, windows: torch.Tensor, measured: torch.Tensor,
                             seen: torch.Tensor | None, psf_px: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pattern loss (n,) and ∂L/∂Re t + i ∂L/∂Im t over each window (n, N, N), no binning.

    With Φ = F[ψ·t] (unitary), I = G ∗ |Φ|² (G: the detector's Gaussian point-spread of σ
    ``psf_px`` (n,) px, or none) and the residual R = I − J on the detector's frequencies
    ``seen`` (zero elsewhere): L = Σ R², and the gradient w.r.t. the exit wave is
    4 F⁻¹[(G ∗ R)·Φ] (G is symmetric), times conj(ψ) for t. ``measured``: J (n, N, N) in FFT
    order (``in_fft_order``)."""
    far_field = torch.fft.fft2(probes * windows, norm="ortho")
    intensity = far_field.real**2 + far_field.imag**2
    if psf_px is not None:
        intensity = blur_fft_order(intensity, psf_px)
    residual = intensity - measured
    if seen is not None:
        residual = residual * seen
    spread = blur_fft_order(residual, psf_px) if psf_px is not None else residual
    exit_gradient = torch.fft.ifft2(4 * spread * far_field, norm="ortho")
    return (residual**2).sum(dim=(-2, -1)), torch.conj(probes) * exit_gradient


def _chunk_loss_and_gradient_autograd(probes: torch.Tensor, windows: torch.Tensor, patterns: torch.Tensor,
                                      geometry: SamplingGeometry, psf_px: torch.Tensor | None = None
                                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """As ``_chunk_loss_and_gradient``, by autograd through ``detector_intensity`` (any binning)."""
    with torch.enable_grad():  # our own autograd use: works inside a caller's no_grad too
        windows = windows.detach().requires_grad_(True)
        intensity = detector_intensity(probes * windows, geometry)
        if psf_px is not None:  # the blur commutes with the shift to FFT order
            intensity = torch.fft.fftshift(blur_fft_order(torch.fft.ifftshift(intensity, dim=(-2, -1)), psf_px),
                                           dim=(-2, -1))
        per_pattern = ((intensity - patterns)**2).sum(dim=(-2, -1))
        (gradient,) = torch.autograd.grad(per_pattern.sum(), windows)
    return per_pattern.detach(), gradient


def reconstruct(batch: RopBatch, settings: RopSettings, initial: torch.Tensor | None = None,
                progress: bool = False, cache: ChunkCache | None = None) -> torch.Tensor:
    """Run ``settings.iterations`` preconditioned gradient steps from ``initial`` (default 0);
    returns V (B, H, W) complex64. ``cache``: the batch's shifted probes, when the caller keeps them.

    Step guard: each gradient evaluation also gives the loss of the current estimate;
    a data set whose loss grew by more than ``divergence_factor`` is put back to its
    previous estimate and stepped again along its previous gradient with half the step
    (for the rest of the run). This costs no extra evaluation, so the work per iteration
    stays fixed; the last step is unchecked.
    """
    shape = (batch.batch_size, *batch.object_shape)
    potential = torch.zeros(shape, dtype=torch.complex64, device=batch.device) if initial is None \
        else initial.to(batch.device, torch.complex64).clone()
    with deterministic(batch.device), torch.no_grad():
        cache = cache or ChunkCache(batch, settings)
        light = illumination(batch, cache)
        floor = settings.illumination_floor * light.amax(dim=(-2, -1), keepdim=True)
        # a data set without any illumination (every frame blanked) has nothing to fit: it stays zero
        step = torch.where(light + floor > 0, settings.step_size / (light + floor).clamp_min(1e-30),
                           torch.zeros_like(light))
    previous_loss = torch.full((batch.batch_size,), float("inf"), dtype=torch.float64, device=batch.device)
    previous_potential, previous_gradient = potential, torch.zeros_like(potential)
    with deterministic(batch.device):
        for _ in tqdm(range(settings.iterations), desc="ROP", unit="it", disable=not progress, leave=False):
            loss, gradient = loss_and_gradient(potential, batch, cache)
            # written so that a NaN or infinite loss also counts as divergence
            worse = ~(loss <= settings.divergence_factor * previous_loss).view(-1, 1, 1)
            if bool(worse.any()):
                step = torch.where(worse, 0.5 * step, step)
                potential = torch.where(worse, previous_potential, potential)
                gradient = torch.where(worse, previous_gradient, gradient)
                loss = torch.where(worse.view(-1), previous_loss, loss)
            previous_loss, previous_potential, previous_gradient = loss, potential, gradient
            potential = potential - step * gradient
    return potential


def reconstruct_sets(frames: Sequence[np.ndarray], positions_angstrom: Sequence[np.ndarray],
                     optics: Sequence[ProbeOptics], grid: ObjectGrid, geometry: SamplingGeometry, iterations: int,
                     device: torch.device | None = None,
                     corrections: Sequence[DetectorCorrection | None] | None = None) -> torch.Tensor:
    """ROP of B data sets (frames (P_b, M, M), positions (P_b, 2) Å, their optics and detector
    corrections) on one shared grid, ``iterations`` steps of the default settings: V (B, H, W) complex64."""
    data = prepare_batch(frames, positions_angstrom, optics, grid, geometry, device, corrections)
    return reconstruct(data, RopSettings(iterations=iterations))


@dataclass(frozen=True)
class Reconstruction:
    """A reconstruction of one recording: V (H, W) complex (real part: phase in rad)."""

    potential: np.ndarray
    grid: ObjectGrid
    positions_angstrom: np.ndarray
    seconds: float
    iterations: int


def reconstruction_geometry(acquisition: Acquisition, oversample: int = 1, upsample: int = 1) -> SamplingGeometry:
    return SamplingGeometry(acquisition.detector_px, acquisition.detector_sampling_inv_angstrom,
                            upsample=upsample, oversample=oversample)


def reconstruct_acquisition(acquisition: Acquisition, indices: np.ndarray, settings: RopSettings,
                            geometry: SamplingGeometry | None = None, device: torch.device | None = None,
                            progress: bool = False, correction: DetectorCorrection | None = None) -> Reconstruction:
    """Reconstruct one recording from the patterns ``indices`` on the grid that covers all
    of its recorded positions (so every subset of a recording shares one grid)."""
    return reconstruct_subsets(acquisition, [indices], settings, geometry, device, progress, correction)[0]


def reconstruct_subsets(acquisition: Acquisition, subsets: Sequence[np.ndarray], settings: RopSettings,
                        geometry: SamplingGeometry | None = None, device: torch.device | None = None,
                        progress: bool = False, correction: DetectorCorrection | None = None) -> list[Reconstruction]:
    """One reconstruction per subset of a recording's patterns (each an index array), in one
    batched ROP run on the grid covering all recorded positions. Each result equals the one
    ``reconstruct_acquisition`` gives for that subset alone (a batch's data sets do not
    interact); ``seconds`` is the whole batch's time. ``correction``: the detector's, the same
    for every subset (``detector_signals.recording_correction``; ``None``: the metadata's
    optics and an ideal detector)."""
    geometry = geometry or reconstruction_geometry(acquisition)
    grid = ObjectGrid.covering(acquisition.positions_angstrom, geometry)
    sorted_subsets = [np.sort(np.asarray(indices, dtype=np.int64)) for indices in subsets]
    positions = [acquisition.positions_angstrom[indices] for indices in sorted_subsets]
    frames = [np.asarray(acquisition.frames[indices]) for indices in sorted_subsets]
    started = time.perf_counter()
    batch = prepare_batch(frames, positions, [acquisition.optics] * len(subsets), grid, geometry, device,
                          [correction] * len(subsets))
    potentials = reconstruct(batch, settings, progress=progress)
    if batch.device.type == "cuda":
        torch.cuda.synchronize(batch.device)
    seconds = time.perf_counter() - started
    return [Reconstruction(potential=potential.cpu().numpy(), grid=grid, positions_angstrom=position,
                           seconds=seconds, iterations=settings.iterations)
            for potential, position in zip(potentials, positions)]
