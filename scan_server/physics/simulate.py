"""Simulated recordings: specimen → projected potential → forward model → Poisson counts.

``simulate_recording`` writes one full raster recording with its ground truth (the true
phase σ·v_z) in the canonical format, chunk by chunk, showing progress.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..contracts import Acquisition, GroundTruth, ObjectGrid, ProbeOptics, RasterScan, SamplingGeometry
from ..errors import ParameterError
from ..io.canonical import RecordingWriter, frame_dtype
from ..units import interaction_constant_rad_per_volt_angstrom
from .detector import DetectorDefects, DetectorModel, DetectorRanges, detect
from .families import SPECIMEN_FAMILIES, SpecimenFrame, generate_family_specimen
from .forward import WindowPlan, detector_intensity, forward_patterns, poisson_counts
from .potential import projected_potential_volt_angstrom
from .probe import probe_real
from .specimen import SpecimenSettings


@dataclass(frozen=True)
class SimulationSettings:
    """Everything that defines a simulated recording except the seed (paper defaults).

    The specimen is sampled with a 0.164 Å pixel (``oversample`` 2: twice finer than the
    detector's Nyquist pixel, close to the paper's 0.154 Å), so the computed far field
    reaches twice the detector's angle and its centre is recorded. ``upsample`` 2 would
    also integrate each detector pixel over 2 × 2 model pixels (4× the cost; the 21 Å
    probe window of ``upsample`` 1 already holds a probe defocused by 20 Å without
    aliasing). ``c10_range_angstrom`` is the spread of
    the defocus (C10 = −defocus) drawn uniformly per recording. ``family`` is one of
    ``families.SPECIMEN_FAMILIES`` (``film``: the paper's homogeneous MoS2 film).
    ``detector``: the detector's imperfections and the metadata's miscalibration
    (``physics.detector``; the default is ideal); ``detector_ranges``: draw them (and the
    dose) per recording instead, from a generator of its own, so a seed's specimen is the
    same with any detector.
    """

    energy_ev: float = 60e3
    semiangle_mrad: float = 33.0
    c10_range_angstrom: tuple[float, float] = (-20.0, 20.0)
    c30_angstrom: float = 0.0
    scan_shape: tuple[int, int] = (100, 100)
    scan_step_angstrom: float = 0.2
    detector_px: int = 64
    detector_sampling_inv_angstrom: float = 0.04759
    upsample: int = 1
    oversample: int = 2
    electrons_per_pattern: float = 2.1e5
    poisson_noise: bool = True
    specimen: SpecimenSettings = field(default_factory=SpecimenSettings)
    family: str = "film"
    chunk_positions: int = 256
    detector: DetectorModel = field(default_factory=DetectorModel)
    detector_ranges: DetectorRanges | None = None

    def __post_init__(self) -> None:
        if not self.electrons_per_pattern > 0:
            raise ParameterError(f"dose must be positive, got {self.electrons_per_pattern} electrons per pattern")
        low, high = self.c10_range_angstrom
        if low > high:
            raise ParameterError(f"defocus range must be (low, high), got {self.c10_range_angstrom}")
        if self.family not in SPECIMEN_FAMILIES:
            raise ParameterError(f"unknown specimen family {self.family!r}: choose one of "
                                 f"{', '.join(SPECIMEN_FAMILIES)}")

    @property
    def geometry(self) -> SamplingGeometry:
        return SamplingGeometry(self.detector_px, self.detector_sampling_inv_angstrom,
                                upsample=self.upsample, oversample=self.oversample)

    @property
    def scan(self) -> RasterScan:
        return RasterScan(shape=self.scan_shape, step_angstrom=self.scan_step_angstrom)


PRESETS: dict[str, SimulationSettings] = {
    "paper": SimulationSettings(),
    "small": SimulationSettings(scan_shape=(32, 32)),
}


def preset(name: str, **overrides: object) -> SimulationSettings:
    """A named preset with optional field overrides."""
    if name not in PRESETS:
        raise ParameterError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)  # type: ignore[arg-type]


def _specimen_phase(settings: SimulationSettings, grid: ObjectGrid, positions_angstrom: np.ndarray,
                    rng: np.random.Generator, device: torch.device) -> tuple[np.ndarray, dict]:
    """The true phase (H, W) rad on ``grid`` of a specimen of the settings' family, whose
    scan field is the bounding box of ``positions_angstrom`` (n, 2) Å, and its description."""
    pad_angstrom = 4.0
    box = np.asarray(grid.shape_px) * grid.pixel_size_angstrom + 2 * pad_angstrom
    corner = np.asarray(grid.origin_angstrom) - 0.5 * grid.pixel_size_angstrom - pad_angstrom
    frame = SpecimenFrame((float(box[0]), float(box[1])),
                          tuple(float(v) for v in positions_angstrom.min(axis=0) - corner),  # type: ignore[arg-type]
                          tuple(float(v) for v in positions_angstrom.max(axis=0) - corner))  # type: ignore[arg-type]
    specimen = generate_family_specimen(settings.family, settings.specimen, frame, rng)
    potential = projected_potential_volt_angstrom(specimen.positions_angstrom + corner, specimen.numbers,
                                                  grid, pad_angstrom=pad_angstrom, device=device)
    sigma = interaction_constant_rad_per_volt_angstrom(settings.energy_ev)
    return (potential * sigma).cpu().numpy(), specimen.description


def recording_detector(settings: SimulationSettings, seed: int) -> tuple[DetectorModel, float]:
    """The detector and dose (electrons per pattern) of the recording with ``seed``: the
    settings' own, or drawn from ``detector_ranges`` by a generator of the seed's own."""
    if settings.detector_ranges is None:
        return settings.detector, settings.electrons_per_pattern
    return settings.detector_ranges.draw(np.random.default_rng([seed, 7]))


def simulate_recording(settings: SimulationSettings, seed: int, path: str | Path,
                       device: torch.device | None = None, progress: bool = True) -> Path:
    """Simulate one raster recording and write it (canonical format) to ``path``. The
    metadata carries the settings' semi-angle and detector sampling; the simulation uses
    the true ones of the recording's detector (``recording_detector``)."""
    device = device or torch.device("cpu")
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    started = time.perf_counter()
    detector, electrons = recording_detector(settings, seed)
    true_sampling = settings.detector_sampling_inv_angstrom / (1 + detector.sampling_error)
    geometry = replace(settings, detector_sampling_inv_angstrom=true_sampling).geometry
    scan = settings.scan
    positions = scan.positions_angstrom()
    grid = ObjectGrid.covering(positions, geometry, margin_px=2)
    c10 = float(rng.uniform(*settings.c10_range_angstrom))
    optics = ProbeOptics(settings.energy_ev, settings.semiangle_mrad, c10_angstrom=c10,
                         c30_angstrom=settings.c30_angstrom)
    true_optics = replace(optics, semiangle_mrad=settings.semiangle_mrad / (1 + detector.semiangle_error))
    phase, description = _specimen_phase(settings, grid, positions, rng, device)
    transmission = torch.exp(1j * torch.as_tensor(phase, device=device)).to(torch.complex64)[None]
    probe = probe_real(true_optics, geometry, device).to(torch.complex64)
    unscattered_peak = float(detector_intensity(probe[None], geometry).max())
    dtype = frame_dtype(3 * unscattered_peak * electrons + 10 * detector.dark_counts + 2 * detector.hot_pixels
                        * detector.hot_pixel_counts, not settings.poisson_noise)
    metadata = {"simulation": _settings_record(settings), "seed": seed, "specimen": description,
                "detector": detector.as_dict(), "electrons_per_pattern": electrons}
    defects = DetectorDefects.draw(detector, geometry.detector_px, np.random.default_rng([seed, 8]), device)
    field_x = (float(positions[:, 1].min()), float(positions[:, 1].max()))
    with RecordingWriter(path, positions, optics, geometry.detector_px, settings.detector_sampling_inv_angstrom,
                         dtype, scan=scan, electrons_per_pattern=electrons, metadata=metadata) as writer:
        chunks = range(0, len(positions), settings.chunk_positions)
        for start in tqdm(chunks, desc=f"simulate seed {seed}", unit="chunk", disable=not progress, leave=False):
            stop = min(start + settings.chunk_positions, len(positions))
            plan = WindowPlan.for_positions(grid, geometry, positions[start:stop], device=device)
            with torch.no_grad():
                intensity = forward_patterns(transmission, probe, plan, geometry)
                if detector.ideal:
                    frames = poisson_counts(intensity, electrons, generator) if settings.poisson_noise \
                        else intensity * electrons
                else:
                    frames = detect(intensity, positions[start:stop], detector, defects, electrons, field_x,
                                    settings.poisson_noise, generator)
            writer.write_frames(start, frames.cpu().numpy())
        writer.write_ground_truth(GroundTruth(phase_rad=phase, grid=grid))
        writer.set_attribute("simulation_seconds", time.perf_counter() - started)
    return Path(path)


def _settings_record(settings: SimulationSettings) -> dict:
    record = asdict(settings)
    record.pop("detector_ranges")
    if settings.detector_ranges is not None:
        record["detector_ranges"] = {k: list(v) for k, v in asdict(settings.detector_ranges).items()}
    record["specimen"]["vacancy_fraction_range"] = {
        k: list(v) for k, v in settings.specimen.vacancy_fraction_range.items()}
    return record


def training_physics(acquisitions: list[Acquisition]) -> dict:
    """What the recordings' simulated physics spans (from their metadata; empty for recorded
    experiments): the specimen families, the detector ranges they were drawn from, and the
    range of each drawn detector quantity and of the dose."""
    metadata = [a.metadata for a in acquisitions]
    families = sorted({(m.get("specimen") or {}).get("family") for m in metadata} - {None})
    detectors = [m["detector"] for m in metadata if isinstance(m.get("detector"), dict)]
    doses = [float(a.electrons_per_pattern) for a in acquisitions if a.electrons_per_pattern]
    spans = {key: [min(d[key] for d in detectors), max(d[key] for d in detectors)]
             for key in (detectors[0] if detectors else {}) if isinstance(detectors[0][key], (int, float))}
    ranges = next(((m.get("simulation") or {}).get("detector_ranges") for m in metadata
                   if (m.get("simulation") or {}).get("detector_ranges")), None)
    return {"families": families, "detector_ranges": ranges, "detector_spans": spans,
            "electrons_per_pattern": [min(doses), max(doses)] if doses else None}
