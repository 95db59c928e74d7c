"""Specimen families: fields where adaptive scanning can pay, and the homogeneous film.

Each family starts from the film of ``specimen.py`` (MoS2, or the ``--structure`` file)
and shapes it inside the scan field, randomised per seed (lengths in Å, box frame (y, x)):

* ``film``: the film everywhere (the paper's specimen).
* ``holes``: 1–4 vacuum holes of 2–8 Å radius, centred in the scan field.
* ``edge``: a straight edge at a random angle; 35–80 % of the scan field keeps the film.
* ``island``: a flake in vacuum, a random star-shaped polygon of 7–10 Å radius within
  2.5 Å of the field's centre, both scaled by the field's side / 19.8 Å (the paper's
  field), so that it covers about 30–70 % of any field.
* ``particles``: 1–3 metal nanoparticles (Au or Pt, 5–15 Å diameter, cut from an FCC
  ``ase.cluster`` and randomly rotated) on an amorphous-carbon support 2–5 Å thick;
  with ``--structure`` the file's material makes the particles.
* ``contamination``: the film under 1–3 dome-shaped amorphous-carbon patches of 3–8 Å
  radius and 5–20 Å peak thickness.

``mixed`` picks the family from the seed (``family_for_seed``), so a run of 6·k
consecutive seeds holds k of each. Every specimen's description carries its family and
``material_fraction_field`` (the fraction of the scan field that is not vacuum, sampled
on a 0.2 Å lattice) and the family's own random choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from ase import Atoms
from ase.cluster import FaceCenteredCubic
from matplotlib.path import Path as PolygonPath
from scipy.spatial.transform import Rotation

from ..errors import ParameterError
from .specimen import (
    AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3,
    Specimen,
    SpecimenSettings,
    base_structure,
    generate_specimen,
)

SPECIMEN_FAMILIES = ("film", "holes", "edge", "island", "particles", "contamination")
#: the option value that cycles through every family with the seed
MIXED = "mixed"

#: the side of the paper's scan field (100 positions, 0.2 Å apart); the island scales with the field
PAPER_FIELD_ANGSTROM = 19.8
#: Metals the particles family draws from (FCC lattice constants taken from ASE).
PARTICLE_ELEMENTS = ("Au", "Pt")


@dataclass(frozen=True)
class SpecimenFrame:
    """The box a specimen fills, (y, x) in Å from its corner, and the scan field inside it
    (the rectangle from ``field_low_angstrom`` to ``field_high_angstrom``)."""

    box_angstrom: tuple[float, float]
    field_low_angstrom: tuple[float, float]
    field_high_angstrom: tuple[float, float]

    def field_points(self, spacing_angstrom: float = 0.2) -> np.ndarray:
        """A lattice of points (n, 2) covering the scan field."""
        low, high = np.asarray(self.field_low_angstrom), np.asarray(self.field_high_angstrom)
        y = np.arange(low[0], high[0] + 1e-9, spacing_angstrom)
        x = np.arange(low[1], high[1] + 1e-9, spacing_angstrom)
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.field_low_angstrom, self.field_high_angstrom)

    @property
    def centre_angstrom(self) -> np.ndarray:
        return 0.5 * (np.asarray(self.field_low_angstrom) + np.asarray(self.field_high_angstrom))


def family_for_seed(choice: str, seed: int) -> str:
    """The family of the recording with ``seed``: ``choice`` itself, or for ``mixed`` the
    families in turn (seed modulo their number)."""
    if choice == MIXED:
        return SPECIMEN_FAMILIES[seed % len(SPECIMEN_FAMILIES)]
    if choice not in SPECIMEN_FAMILIES:
        raise ParameterError(f"unknown specimen family {choice!r}: choose one of "
                             f"{', '.join(SPECIMEN_FAMILIES)} or {MIXED}")
    return choice


Region = Callable[[np.ndarray], np.ndarray]
"""A shape: positions (n, 2) Å → True where the film stays."""


def _keep_where(specimen: Specimen, keep: Region, frame: SpecimenFrame, extra: dict) -> Specimen:
    inside = keep(specimen.positions_angstrom)
    fraction = float(keep(frame.field_points()).mean())
    description = {**specimen.description, **extra, "atoms": int(inside.sum()), "material_fraction_field": fraction}
    return Specimen(specimen.positions_angstrom[inside], specimen.numbers[inside], description)


def _holes(film: Specimen, frame: SpecimenFrame, rng: np.random.Generator) -> Specimen:
    count = int(rng.integers(1, 5))
    centres = np.stack([frame.random_point(rng) for _ in range(count)])
    radii = rng.uniform(2.0, 8.0, count)

    def keep(yx: np.ndarray) -> np.ndarray:
        distance = np.linalg.norm(yx[:, None, :] - centres[None], axis=-1)
        return np.all(distance >= radii[None], axis=1)

    return _keep_where(film, keep, frame, {"holes": count, "hole_radii_angstrom": radii.round(3).tolist(),
                                              "hole_centres_angstrom": centres.round(3).tolist()})


def _edge(film: Specimen, frame: SpecimenFrame, rng: np.random.Generator) -> Specimen:
    angle = rng.uniform(0.0, 2 * math.pi)
    normal = np.array([math.sin(angle), math.cos(angle)])
    target = rng.uniform(0.35, 0.80)
    offset = float(np.quantile(frame.field_points() @ normal, 1.0 - target))

    def keep(yx: np.ndarray) -> np.ndarray:
        return yx @ normal >= offset

    return _keep_where(film, keep, frame, {"edge_normal_deg": math.degrees(angle)})


def _island(film: Specimen, frame: SpecimenFrame, rng: np.random.Generator) -> Specimen:
    vertices = int(rng.integers(5, 9))
    scale = float(np.min(np.subtract(frame.field_high_angstrom, frame.field_low_angstrom))) / PAPER_FIELD_ANGSTROM
    radius = rng.uniform(7.0, 10.0) * scale
    spacing = 2 * math.pi / vertices
    angles = rng.uniform(0.0, spacing) + spacing * (np.arange(vertices) + rng.uniform(-0.3, 0.3, vertices))
    radii = radius * rng.uniform(0.8, 1.0, vertices)
    centre = frame.centre_angstrom + rng.uniform(-2.5, 2.5, 2) * scale
    polygon = PolygonPath(centre + np.stack([radii * np.sin(angles), radii * np.cos(angles)], axis=1))

    def keep(yx: np.ndarray) -> np.ndarray:
        return polygon.contains_points(yx)

    return _keep_where(film, keep, frame, {"island_radius_angstrom": float(radius), "island_vertices": vertices})


def _particle_atoms(settings: SpecimenSettings, diameter_angstrom: float, element: str,
                    rng: np.random.Generator) -> Atoms:
    """A nanoparticle of about ``diameter_angstrom``: a sphere cut from an FCC cluster of
    ``element`` (or from the structure file's material), randomly rotated, centred on 0."""
    if settings.structure_file is None:
        layers = int(math.ceil(diameter_angstrom / 2.0)) + 2
        source = FaceCenteredCubic(element, [(1, 0, 0), (1, 1, 0), (1, 1, 1)], [layers] * 3)
    else:
        source = base_structure(settings)
        if source.cell.rank == 3 and all(source.pbc):
            reps = [int(math.ceil(diameter_angstrom / max(length, 1.0))) + 1 for length in source.cell.lengths()]
            source = source.repeat(reps)
    positions = source.positions - source.positions.mean(axis=0)
    inside = np.linalg.norm(positions, axis=1) <= diameter_angstrom / 2
    if not inside.any():
        inside = np.linalg.norm(positions, axis=1) == np.linalg.norm(positions, axis=1).min()
    rotated = Rotation.random(random_state=rng).apply(positions[inside])
    return Atoms(numbers=source.numbers[inside], positions=rotated)


def _particles(settings: SpecimenSettings, frame: SpecimenFrame, rng: np.random.Generator) -> Specimen:
    box = np.asarray(frame.box_angstrom)
    thickness = rng.uniform(2.0, 5.0)
    count = int(rng.poisson(AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3 * thickness * box[0] * box[1]))
    parts = [(rng.uniform(0, 1, (count, 2)) * box, np.full(count, 6))]  # the support
    element = PARTICLE_ELEMENTS[int(rng.integers(len(PARTICLE_ELEMENTS)))]
    diameters = rng.uniform(5.0, 15.0, int(rng.integers(1, 4)))
    centres = []
    for diameter in diameters:
        atoms = _particle_atoms(settings, float(diameter), element, rng)
        centre = frame.random_point(rng)
        centres.append(centre)
        parts.append((atoms.positions[:, :2][:, ::-1] + centre, atoms.numbers))
    yx = np.concatenate([p[0] for p in parts])
    numbers = np.concatenate([p[1] for p in parts])
    thermal = rng.normal(0.0, settings.thermal_rms_angstrom, yx.shape) if settings.thermal_rms_angstrom else 0.0
    yx = yx + thermal
    points = frame.field_points()
    covered = np.zeros(len(points), dtype=bool)
    for centre, diameter in zip(centres, diameters):
        covered |= np.linalg.norm(points - centre, axis=1) <= diameter / 2
    inside = np.all((yx >= 0) & (yx < box), axis=1)
    description = {"structure": settings.structure_file or element, "support_thickness_angstrom": thickness,
                   "carbon_atoms": count, "particles": len(diameters),
                   "particle_diameters_angstrom": diameters.round(3).tolist(),
                   "particle_fraction_field": float(covered.mean()), "atoms": int(inside.sum()),
                   "material_fraction_field": 1.0}
    return Specimen(yx[inside], numbers[inside], description)


def _contamination(film: Specimen, frame: SpecimenFrame, rng: np.random.Generator) -> Specimen:
    count = int(rng.integers(1, 4))
    centres = np.stack([frame.random_point(rng) for _ in range(count)])
    radii = rng.uniform(3.0, 8.0, count)
    peaks = rng.uniform(5.0, 20.0, count)

    def thickness(yx: np.ndarray) -> np.ndarray:
        """Carbon thickness (Å) at each position: a dome per patch, patches add."""
        distance = np.linalg.norm(yx[:, None, :] - centres[None], axis=-1) / radii[None]
        return (peaks[None] * np.clip(1.0 - distance**2, 0.0, None)).sum(axis=1)

    carbon = []
    for centre, radius, peak in zip(centres, radii, peaks):
        # a dome of radius r and peak h holds π r² h / 2 Å³ of carbon
        atoms = int(rng.poisson(AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3 * math.pi * radius**2 * peak / 2))
        drawn = np.empty((0, 2))
        while len(drawn) < atoms:  # rejection sampling from the dome's profile
            trial = centre + rng.uniform(-radius, radius, (4 * atoms + 16, 2))
            profile = np.clip(1.0 - (np.linalg.norm(trial - centre, axis=1) / radius) ** 2, 0.0, None)
            drawn = np.concatenate([drawn, trial[rng.uniform(0, 1, len(trial)) < profile]])
        carbon.append(drawn[:atoms])
    yx = np.concatenate([film.positions_angstrom, *carbon])
    numbers = np.concatenate([film.numbers, np.full(len(yx) - len(film.numbers), 6)])
    description = {**film.description, "patches": count, "patch_radii_angstrom": radii.round(3).tolist(),
                   "patch_peak_thickness_angstrom": peaks.round(3).tolist(),
                   "contamination_fraction_field": float((thickness(frame.field_points()) > 0).mean()),
                   "contamination_atoms": int(len(yx) - len(film.numbers)), "atoms": int(len(yx)),
                   "material_fraction_field": 1.0}
    return Specimen(yx, numbers, description)


def generate_family_specimen(family: str, settings: SpecimenSettings, frame: SpecimenFrame,
                             rng: np.random.Generator) -> Specimen:
    """A random specimen of ``family`` (one of ``SPECIMEN_FAMILIES``) filling the frame's box."""
    if family not in SPECIMEN_FAMILIES:
        raise ParameterError(f"unknown specimen family {family!r}: choose one of {', '.join(SPECIMEN_FAMILIES)}")
    if family == "particles":
        specimen = _particles(settings, frame, rng)
    else:
        film = generate_specimen(settings, frame.box_angstrom, rng)
        film = replace(film, description={**film.description, "material_fraction_field": 1.0})
        shape = {"film": lambda f, fr, r: f, "holes": _holes, "edge": _edge, "island": _island,
                 "contamination": _contamination}[family]
        specimen = shape(film, frame, rng)
    return replace(specimen, description={"family": family, **specimen.description})
