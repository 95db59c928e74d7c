"""An independent validation set: 4D-STEM recordings simulated with abTEM, with their truth.

What: full 100 × 100 raster recordings (the paper preset's geometry: 60 kV, 33 mrad,
C10 drawn in [-20, 20] Å per recording, 0.2 Å step, 64 × 64 detector of 0.04759 Å⁻¹,
about 2.1e5 electrons per pattern, Poisson noise) in the canonical format
(docs/recording-format.md), each with its ground truth: the true phase σ·v_z (rad) on the
grid our code reconstructs on (``ObjectGrid.covering(positions, paper geometry, margin_px=2)``,
0.164 Å pixels). Specimens (MoS2, WS2, graphene, built here with ase, never with our
specimen code; lattice rotated and shifted at random, 1–4 % random vacancies) come in the
families holes (20–35 % vacuum in the scan field), edge (25–45 %), island (40–60 %),
ribbon (30–50 %) and film (none). The default 12 recordings: 2 of each vacuum family and
4 films, the materials mixed.

Why: an independent simulator checks our physics (potential, probe, forward model,
detector). These files are for evaluation only (``scan-server evaluate``): never train
on them, never tune anything to them.

Physics, all abTEM's own: the independent-atom potential with Lobato's parametrisation,
each atom's infinite projection assigned to one slice (slices of
``--slice-thickness`` Å); frozen phonons (``--frozen-phonons`` configurations, isotropic
Gaussian displacements σ = 0.08 Å in x, y, z); multislice with abTEM's 2/3 antialias
aperture; abTEM's probe (soft aperture edge, aberration phase exp(−iχ), C10 = −defocus:
the same convention as our ``ProbeOptics.c10_angstrom``, checked by the overlap of the
complex vacuum probes, 0.99 with the same sign, 0.82 with the opposite). The periodic
cell is L = 256 × 0.164 Å = 2/Δk = 42.03 Å square: the truth grid's pixel (0, 0) sits at
the cell's origin and the scan field in its middle (10.8 Å from the cell's edges), so the
truth is abTEM's own projected potential, sampled where abTEM samples it (no
interpolation). The simulation uses the same 256 × 256 sampling, 0.164 Å: the detector's own
Nyquist pixel (0.33 Å) would not do, as abTEM's 2/3 antialias aperture then passes only
|k| ≤ 1.0 Å⁻¹; at 0.164 Å it passes |k| ≤ 2.03 Å⁻¹, the whole detector (±1.55 Å⁻¹) but
its outermost corners. Slices default to 2 Å (MoS2 and WS2: 3 slices, graphene: 1).
Detector: abTEM's diffraction patterns (``PixelatedDetector(max_angle="cutoff")``,
phonon-averaged, 1/L = 0.0238 Å⁻¹ pixels) integrated over each 64 × 64 detector pixel
(overlap weights of the pixel areas; zero frequency at pixel (32, 32), axes (k_y, k_x)),
as fractions of the incident beam, times the dose, then Poisson counts. The truth is σ
times the mean over the phonon configurations of the projected potential (what the
patterns average over). abTEM's axes are (x, y), ours (y, x): positions and patterns are
transposed on the way.

Command line (run it in the abTEM environment, ``make abtem-validation-set``):

    OMP_NUM_THREADS=1 .venv-abtem/bin/python scripts/abtem_validation_set.py \\
        --out data/abtem-validation [--count 12] [--seed 70000] [--frozen-phonons 6]

Recordings that exist are skipped (each is written to ``NAME.partial`` and renamed when
complete), so an interrupted run resumes. Cost measured here (one thread of 2 shared CPU
cores): 293 s per recording with the default 6 phonon configurations (≈ 4.5 ms per
position and configuration, 20 chunks of 500 positions), 1.5 GB peak memory, 22 MB per
file; the default 12 recordings take about an hour.

Checked on abtem_70000_holes_MoS2.h5: our ROP (30 iterations, all 10000 patterns)
correlates with the truth at Pearson r = 0.98 over the field (best at zero shift; the
truth transposed or flipped: |r| < 0.03), and noise-free abTEM patterns match our
forward model run on the same phase at r = 0.99 (the k-flipped ones at 0.92).

Environment: abTEM 1.0.11 with numpy 2.4, torch 2.13.0 (CPU wheel), dask 2026.11, in
``.venv-abtem`` (``make .venv-abtem/.installed``).
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import abtem  # noqa: E402
import ase  # noqa: E402
import dask  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import graphene, mx2  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402
from tqdm import tqdm  # noqa: E402

from scan_server.contracts import GroundTruth, ObjectGrid, ProbeOptics  # noqa: E402
from scan_server.io.canonical import RecordingWriter, frame_dtype  # noqa: E402
from scan_server.physics.simulate import SimulationSettings, preset  # noqa: E402
from scan_server.units import interaction_constant_rad_per_volt_angstrom  # noqa: E402

#: the vacuum families, each with the range of its vacuum fraction over the scan field
VACUUM_RANGES: dict[str, tuple[float, float]] = {
    "holes": (0.20, 0.35), "edge": (0.25, 0.45), "island": (0.40, 0.60), "ribbon": (0.30, 0.50)}
FAMILIES = (*VACUUM_RANGES, "film")
#: the default cycle of families: 12 recordings hold 2 of each vacuum family and 4 films
DEFAULT_CYCLE = ("holes", "edge", "island", "ribbon", "film", "film")
MATERIALS = ("MoS2", "WS2", "graphene")
#: vacuum above and below the layer in the cell, Å
VACUUM_Z_ANGSTROM = 1.0
#: atoms closer than this across the periodic cell's seam are duplicates, Å
DUPLICATE_ANGSTROM = 1.0
#: positions simulated at once (memory: ~0.3 GB of waves)
CHUNK_POSITIONS = 500


@dataclass(frozen=True)
class Args:
    """Command-line settings (lengths in Å)."""

    out: Path
    """folder of the recordings (created)"""
    count: int = 12
    """number of recordings"""
    seed: int = 70000
    """seed of the first recording; recording i uses seed + i"""
    families: tuple[str, ...] = DEFAULT_CYCLE
    """families cycled through, recording i gets families[i % len]"""
    frozen_phonons: int = 6
    """frozen-phonon configurations per recording"""
    phonon_sigma_angstrom: float = 0.08
    """standard deviation of the displacements along each axis"""
    electrons_per_pattern: float = 2.1e5
    """expected electrons per pattern (the incident beam)"""
    slice_thickness_angstrom: float = 2.0
    """multislice slice thickness"""


@dataclass(frozen=True)
class Layout:
    """Where things sit in abTEM's periodic cell, whose axes are (x, y).

    ``cell_angstrom``: side L of the square cell; ``gpts``: its sampling (L/gpts = the truth
    grid's pixel); ``scan_origin_xy_angstrom``: the cell position (x, y) of the first scan
    position, so that the truth grid's pixel (0, 0) lies at the cell's origin."""

    settings: SimulationSettings
    grid: ObjectGrid
    cell_angstrom: float
    gpts: int
    scan_origin_xy_angstrom: tuple[float, float]

    @classmethod
    def paper(cls) -> Layout:
        settings = preset("paper")
        positions = settings.scan.positions_angstrom()
        grid = ObjectGrid.covering(positions, settings.geometry, margin_px=2)
        gpts = 2 ** math.ceil(math.log2(max(grid.shape_px)))
        origin = (-grid.origin_angstrom[1], -grid.origin_angstrom[0])
        return cls(settings, grid, gpts * grid.pixel_size_angstrom, gpts, origin)

    def positions_xy_angstrom(self) -> np.ndarray:
        """The scan positions (n, 2) as abTEM's (x, y) in the cell, in our trigger order."""
        yx = self.settings.scan.positions_angstrom()
        return yx[:, ::-1] + np.asarray(self.scan_origin_xy_angstrom)

    def field_points_xy(self, spacing_angstrom: float = 0.1) -> np.ndarray:
        """A lattice of points (n, 2) (x, y) over the scan field, in the cell."""
        low = np.asarray(self.scan_origin_xy_angstrom)
        extent = self.settings.scan.extent_angstrom[::-1]
        axes = [np.arange(0, e + 1e-9, spacing_angstrom) + lo for e, lo in zip(extent, low)]
        xx, yy = np.meshgrid(*axes, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], axis=1)

    @property
    def field_centre_xy(self) -> np.ndarray:
        return np.asarray(self.scan_origin_xy_angstrom) + 0.5 * np.asarray(self.settings.scan.extent_angstrom[::-1])


# --- specimens --------------------------------------------------------------------------


def unit_layer(material: str) -> Atoms:
    """One unit cell of a monolayer (ase), the layer centred on z = 0."""
    if material == "MoS2":
        return mx2("MoS2", kind="2H", a=3.16, thickness=3.17)
    if material == "WS2":
        return mx2("WS2", kind="2H", a=3.153, thickness=3.14)
    if material == "graphene":
        return graphene("C2", a=2.46)
    raise ValueError(f"unknown material {material!r}: choose one of {', '.join(MATERIALS)}")


def rotated_film(material: str, side_angstrom: float, rng: np.random.Generator) -> tuple[Atoms, dict]:
    """The monolayer filling the square [0, L)² (x, y), its lattice rotated about z by a
    random angle and shifted by a random vector; duplicates across the periodic seam removed."""
    unit = unit_layer(material)
    (a_x, a_y), (b_x, b_y) = unit.cell[0, :2], unit.cell[1, :2]
    height = abs(a_x * b_y - a_y * b_x) / math.hypot(a_x, a_y)
    repeats = int(math.ceil(side_angstrom * math.sqrt(2) / height)) + 4
    layer = unit.repeat((repeats, repeats, 1))
    layer.positions[:, :2] -= 0.5 * (unit.cell[0, :2] + unit.cell[1, :2]) * repeats
    angle_deg = float(rng.uniform(0.0, 360.0))
    layer.rotate(angle_deg, "z", center=(0.0, 0.0, 0.0))
    shift = rng.uniform(0, 1, 2) @ unit.cell[:2, :2]
    layer.positions[:, :2] += 0.5 * side_angstrom + shift
    xy = layer.positions[:, :2]
    layer = layer[np.all((xy >= 0) & (xy < side_angstrom), axis=1)]
    layer = drop_seam_duplicates(layer, side_angstrom)
    thickness = float(np.ptp(layer.positions[:, 2]))
    layer.positions[:, 2] += VACUUM_Z_ANGSTROM - layer.positions[:, 2].min()
    layer.set_cell([side_angstrom, side_angstrom, thickness + 2 * VACUUM_Z_ANGSTROM])
    layer.set_pbc(True)
    return layer, {"lattice_angle_deg": round(angle_deg, 3), "lattice_shift_angstrom": shift.round(4).tolist()}


def drop_seam_duplicates(atoms: Atoms, side_angstrom: float) -> Atoms:
    """Remove one atom of every pair closer than DUPLICATE_ANGSTROM in the periodic cell."""
    points = atoms.positions.copy()
    points[:, 2] -= points[:, 2].min()
    tree = cKDTree(np.mod(points, [side_angstrom, side_angstrom, np.inf]),
                   boxsize=[side_angstrom, side_angstrom, 1e9])
    drop = {max(pair) for pair in tree.query_pairs(DUPLICATE_ANGSTROM)}
    return atoms[[i for i in range(len(atoms)) if i not in drop]]


def add_vacancies(atoms: Atoms, rng: np.random.Generator) -> tuple[Atoms, dict]:
    """Remove a random 1–4 % of the atoms."""
    fraction = float(rng.uniform(0.01, 0.04))
    keep = rng.random(len(atoms)) >= fraction
    return atoms[keep], {"vacancy_fraction": round(fraction, 4), "vacancies": int((~keep).sum())}


# --- families: material masks over points (n, 2) (x, y) in the cell ----------------------

Mask = Callable[[np.ndarray], np.ndarray]


def _unit_normal(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    angle = float(rng.uniform(0, 2 * math.pi))
    return np.array([math.cos(angle), math.sin(angle)]), angle


def holes_shape(layout: Layout, rng: np.random.Generator) -> tuple[Callable[[float], Mask], dict]:
    """2–4 circular holes centred in the field (2 Å from its sides), radii s·(0.6…1.4)."""
    count = int(rng.integers(2, 5))
    low = np.asarray(layout.scan_origin_xy_angstrom) + 2.0
    high = low + np.asarray(layout.settings.scan.extent_angstrom[::-1]) - 4.0
    centres = rng.uniform(low, high, (count, 2))
    relative = rng.uniform(0.6, 1.4, count)

    def shape(scale: float) -> Mask:
        return lambda p: np.all(np.linalg.norm(p[:, None] - centres[None], axis=-1) > scale * relative, axis=1)
    return shape, {"holes": count, "centres_xy_angstrom": centres.round(3).tolist(),
                   "relative_radii": relative.round(3).tolist()}


def edge_shape(layout: Layout, rng: np.random.Generator) -> tuple[Callable[[float], Mask], dict]:
    """A straight edge at a random angle: material where (p − centre)·n ≥ s."""
    normal, angle = _unit_normal(rng)
    centre = layout.field_centre_xy

    def shape(scale: float) -> Mask:
        return lambda p: (p - centre) @ normal >= scale - 20.0
    return shape, {"edge_normal_angle_rad": round(angle, 4)}


def island_shape(layout: Layout, rng: np.random.Generator) -> tuple[Callable[[float], Mask], dict]:
    """A flake in vacuum: r(φ) = s·(1 + a2 cos 2(φ − φ2) + a3 cos 3(φ − φ3)) about a centre
    within 1.5 Å of the field's centre."""
    centre = layout.field_centre_xy + rng.uniform(-1.5, 1.5, 2)
    a2, a3 = float(rng.uniform(0, 0.25)), float(rng.uniform(0, 0.15))
    phi2, phi3 = rng.uniform(0, 2 * math.pi, 2)

    def shape(scale: float) -> Mask:
        def mask(p: np.ndarray) -> np.ndarray:
            d = p - centre
            phi = np.arctan2(d[:, 1], d[:, 0])
            radius = (30.0 - scale) * (1 + a2 * np.cos(2 * (phi - phi2)) + a3 * np.cos(3 * (phi - phi3)))
            return np.hypot(d[:, 0], d[:, 1]) <= radius
        return mask
    return shape, {"island_centre_xy_angstrom": centre.round(3).tolist(), "a2": round(a2, 3), "a3": round(a3, 3)}


def ribbon_shape(layout: Layout, rng: np.random.Generator) -> tuple[Callable[[float], Mask], dict]:
    """A strip at a random angle through a point within 2 Å of the field's centre."""
    normal, angle = _unit_normal(rng)
    centre = layout.field_centre_xy + rng.uniform(-2.0, 2.0, 2)

    def shape(scale: float) -> Mask:
        return lambda p: np.abs((p - centre) @ normal) <= 0.5 * (40.0 - scale)
    return shape, {"ribbon_normal_angle_rad": round(angle, 4), "ribbon_centre_xy_angstrom": centre.round(3).tolist()}


SHAPES = {"holes": holes_shape, "edge": edge_shape, "island": island_shape, "ribbon": ribbon_shape}


def fitted_mask(shape: Callable[[float], Mask], target_vacuum: float, points: np.ndarray) -> tuple[Mask, float]:
    """Bisect the shape's scale s ∈ [0, 40] (vacuum grows with s) to the target vacuum fraction."""
    low, high = 0.0, 40.0
    for _ in range(40):
        middle = 0.5 * (low + high)
        if 1 - shape(middle)(points).mean() < target_vacuum:
            low = middle
        else:
            high = middle
    mask = shape(0.5 * (low + high))
    return mask, float(1 - mask(points).mean())


def build_specimen(family: str, material: str, layout: Layout, rng: np.random.Generator) -> tuple[Atoms, dict]:
    """The specimen's atoms in the cell (x, y, z in Å) and its description."""
    atoms, description = rotated_film(material, layout.cell_angstrom, rng)
    description = {"family": family, "structure": material, **description}
    vacuum = 0.0
    if family != "film":
        shape, choices = SHAPES[family](layout, rng)
        target = float(rng.uniform(*VACUUM_RANGES[family]))
        mask, vacuum = fitted_mask(shape, target, layout.field_points_xy())
        atoms = atoms[mask(atoms.positions[:, :2])]
        description.update(choices)
    atoms, vacancies = add_vacancies(atoms, rng)
    description.update(vacancies, atoms=len(atoms), vacuum_fraction_field=round(vacuum, 4),
                       material_fraction_field=round(1 - vacuum, 4))
    return atoms, description


# --- abTEM simulation ---------------------------------------------------------------------


def detector_weights(centres_inv_angstrom: np.ndarray, pixel_inv_angstrom: float, detector_px: int,
                     detector_sampling_inv_angstrom: float) -> np.ndarray:
    """(M, G) weights: the fraction of each abTEM pixel (centres (G,) Å⁻¹, width
    ``pixel_inv_angstrom``) inside each detector pixel (centres (i − M/2)·Δk, width Δk)."""
    detector = (np.arange(detector_px) - detector_px // 2)[:, None] * detector_sampling_inv_angstrom
    half_detector, half_pixel = detector_sampling_inv_angstrom / 2, pixel_inv_angstrom / 2
    low = np.maximum(detector - half_detector, centres_inv_angstrom[None] - half_pixel)
    high = np.minimum(detector + half_detector, centres_inv_angstrom[None] + half_pixel)
    return np.clip(high - low, 0, None) / pixel_inv_angstrom


def integrate_on_detector(patterns: abtem.measurements.DiffractionPatterns, settings: SimulationSettings) -> np.ndarray:
    """abTEM patterns (n, kx, ky) → our detector (n, M, M), axes (k_y, k_x), zero frequency
    at (M/2, M/2), each detector pixel the integral of the intensity over its area."""
    weights = []
    for axis, size in zip(patterns.axes_metadata[-2:], patterns.array.shape[-2:]):
        centres = axis.offset + axis.sampling * np.arange(size)
        weights.append(detector_weights(centres, axis.sampling, settings.detector_px,
                                        settings.detector_sampling_inv_angstrom))
    w_x, w_y = weights
    on_detector = w_x @ np.asarray(patterns.array, dtype=np.float64) @ w_y.T  # (n, k_x, k_y)
    return on_detector.transpose(0, 2, 1)


def built_potential(atoms: Atoms, layout: Layout, args: Args, seed: int) -> abtem.potentials.iam.PotentialArray:
    """abTEM's potential of every frozen-phonon configuration, (configs, slices, x, y) V·Å."""
    phonons = abtem.FrozenPhonons(atoms, num_configs=args.frozen_phonons, sigmas=args.phonon_sigma_angstrom,
                                  seed=seed)
    potential = abtem.Potential(phonons, gpts=layout.gpts, slice_thickness=args.slice_thickness_angstrom,
                                parametrization="lobato", projection="infinite")
    return potential.build().compute(progress_bar=False)


def truth_phase(potential: abtem.potentials.iam.PotentialArray, layout: Layout) -> np.ndarray:
    """σ · (phonon mean of the projected potential) on the truth grid, (H, W) rad, axes (y, x)."""
    array = np.asarray(potential.array, dtype=np.float64)
    projected = array.reshape(-1, *array.shape[-3:]).sum(axis=1).mean(axis=0)  # (x, y)
    sigma = interaction_constant_rad_per_volt_angstrom(layout.settings.energy_ev)
    height, width = layout.grid.shape_px
    return sigma * projected.T[:height, :width]


def abtem_probe(optics: ProbeOptics, **grid: object) -> abtem.Probe:
    """abTEM's probe for our optics (both C10 = −defocus, ψ(k) = A(k) exp(−iχ(k)))."""
    return abtem.Probe(energy=optics.energy_ev, semiangle_cutoff=optics.semiangle_mrad, C10=optics.c10_angstrom,
                       C30=optics.c30_angstrom, **grid)


def vacuum_pattern(optics: ProbeOptics, layout: Layout) -> np.ndarray:
    """The unscattered beam on our detector (M, M), fractions of the incident beam."""
    probe = abtem_probe(optics, extent=layout.cell_angstrom, gpts=layout.gpts)
    waves = probe.build(scan=abtem.CustomScan([[layout.cell_angstrom / 2] * 2]))
    return integrate_on_detector(waves.diffraction_patterns(max_angle="cutoff").compute(progress_bar=False),
                                 layout.settings)[0]


def simulate_patterns(potential: abtem.potentials.iam.PotentialArray, optics: ProbeOptics, layout: Layout,
                      positions_xy: np.ndarray) -> np.ndarray:
    """Phonon-averaged patterns (n, M, M) on our detector, fractions of the incident beam."""
    detector = abtem.PixelatedDetector(max_angle="cutoff")
    patterns = abtem_probe(optics).scan(potential, scan=abtem.CustomScan(positions_xy), detectors=detector)
    return integrate_on_detector(patterns.compute(progress_bar=False), layout.settings)


def recording_plan(args: Args, index: int) -> tuple[int, str, str]:
    """Seed, family and material of recording ``index``: families cycle, the materials
    cycle with an offset per round of families so that each family meets several."""
    family = args.families[index % len(args.families)]
    material = MATERIALS[(index + index // len(args.families)) % len(MATERIALS)]
    return args.seed + index, family, material


def simulate_one(args: Args, layout: Layout, index: int, path: Path) -> float:
    """Simulate recording ``index`` and write it to ``path``; returns the seconds it took."""
    started = time.perf_counter()
    seed, family, material = recording_plan(args, index)
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng([seed, 1])
    settings = layout.settings
    optics = ProbeOptics(settings.energy_ev, settings.semiangle_mrad,
                         c10_angstrom=float(rng.uniform(*settings.c10_range_angstrom)))
    atoms, specimen = build_specimen(family, material, layout, rng)
    potential = built_potential(atoms, layout, args, seed)
    positions_yx = settings.scan.positions_angstrom()
    positions_xy = layout.positions_xy_angstrom()
    dtype = frame_dtype(3 * vacuum_pattern(optics, layout).max() * args.electrons_per_pattern, noise_free=False)
    with RecordingWriter(path, positions_yx, optics, settings.detector_px, settings.detector_sampling_inv_angstrom,
                         dtype, scan=settings.scan, electrons_per_pattern=args.electrons_per_pattern,
                         metadata=_metadata(args, layout, seed, optics, specimen)) as writer:
        chunks = range(0, len(positions_xy), CHUNK_POSITIONS)
        for start in tqdm(chunks, desc=f"{path.stem}: abTEM multislice, {args.frozen_phonons} phonon configs",
                          unit="chunk", leave=False, **_tqdm_options()):
            intensity = simulate_patterns(potential, optics, layout, positions_xy[start:start + CHUNK_POSITIONS])
            writer.write_frames(start, noise.poisson(np.clip(intensity, 0, None) * args.electrons_per_pattern))
        writer.write_ground_truth(GroundTruth(phase_rad=truth_phase(potential, layout), grid=layout.grid))
        seconds = time.perf_counter() - started
        writer.set_attribute("simulation_seconds", seconds)
    return seconds


def _metadata(args: Args, layout: Layout, seed: int, optics: ProbeOptics, specimen: dict) -> dict:
    simulation = {
        "simulator": "abTEM", "abtem_version": abtem.__version__, "ase_version": ase.__version__,
        "purpose": "independent validation set: evaluation only, never training or tuning",
        "parametrization": "lobato", "projection": "infinite",
        "slice_thickness_angstrom": args.slice_thickness_angstrom, "frozen_phonons": args.frozen_phonons,
        "phonon_sigma_angstrom": args.phonon_sigma_angstrom, "probe_aperture": "abTEM soft aperture",
        "c10_angstrom": optics.c10_angstrom, "cell_angstrom": layout.cell_angstrom, "gpts": layout.gpts,
        "sampling_angstrom": layout.cell_angstrom / layout.gpts,
        "scan_origin_in_cell_xy_angstrom": list(layout.scan_origin_xy_angstrom),
        "detector": "abTEM PixelatedDetector(max_angle='cutoff'), integrated over the detector pixels",
        "ground_truth": "sigma * phonon mean of abTEM's projected potential",
        "electrons_per_pattern": args.electrons_per_pattern, "poisson_noise": True, "seed": seed,
        "family": specimen["family"], "structure": specimen["structure"],
        "vacuum_fraction_field": specimen["vacuum_fraction_field"],
    }
    return {"simulation": simulation, "seed": seed, "specimen": specimen}


def _tqdm_options() -> dict:
    """Redraw often on a terminal, every 30 s into a log file."""
    return {} if sys.stderr.isatty() else {"mininterval": 30.0}


def recording_name(args: Args, index: int) -> str:
    seed, family, material = recording_plan(args, index)
    return f"abtem_{seed}_{family}_{material}.h5"


def run(args: Args) -> None:
    """Simulate every recording of the set that is not there yet."""
    dask.config.set(scheduler="synchronous")
    abtem.config.set({"fftw.threads": 1, "mkl.threads": 1, "device": "cpu", "precision": "float32"})
    layout = Layout.paper()
    if max(layout.grid.shape_px) > layout.gpts:
        raise RuntimeError(f"the truth grid {layout.grid.shape_px} does not fit the cell's {layout.gpts} px")
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(args.count) if not (args.out / recording_name(args, i)).exists()]
    print(f"abTEM {abtem.__version__}: {args.count - len(todo)} of {args.count} recordings exist in {args.out}, "
          f"simulating {len(todo)}", flush=True)
    for index in tqdm(todo, desc="abTEM validation set", unit="recording", **_tqdm_options()):
        path = args.out / recording_name(args, index)
        seconds = simulate_one(args, layout, index, path)
        print(f"wrote {path} in {seconds:.0f} s", flush=True)


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/abtem-validation"), help="output folder")
    p.add_argument("--count", type=int, default=Args.count, help="number of recordings")
    p.add_argument("--seed", type=int, default=Args.seed, help="seed of the first recording (then seed + i)")
    p.add_argument("--families", default=",".join(DEFAULT_CYCLE),
                   help=f"comma-separated families cycled through, of {', '.join(FAMILIES)}")
    p.add_argument("--frozen-phonons", type=int, default=Args.frozen_phonons, help="phonon configurations")
    p.add_argument("--phonon-sigma", type=float, default=Args.phonon_sigma_angstrom,
                   help="displacement standard deviation per axis, Å")
    p.add_argument("--electrons-per-pattern", type=float, default=Args.electrons_per_pattern,
                   help="expected electrons per pattern (Poisson noise)")
    p.add_argument("--slice-thickness", type=float, default=Args.slice_thickness_angstrom, help="Å")
    a = p.parse_args(argv)
    families = tuple(f.strip() for f in a.families.split(",") if f.strip())
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        p.error(f"unknown families {unknown}: choose from {', '.join(FAMILIES)}")
    if a.count < 1 or a.frozen_phonons < 1 or not a.electrons_per_pattern > 0:
        p.error("--count and --frozen-phonons must be ≥ 1 and --electrons-per-pattern positive")
    return Args(a.out, a.count, a.seed, families, a.frozen_phonons, a.phonon_sigma, a.electrons_per_pattern,
                a.slice_thickness)


if __name__ == "__main__":
    run(parse_args())
