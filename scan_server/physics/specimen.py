"""Specimens: a randomised MoS2 monolayer (or any structure ASE reads) → atom positions.

The generator builds a supercell large enough for any in-plane rotation, rotates it,
translates it by a random fraction of the unit cell, cuts the atoms that fall in the
requested box (a non-periodic flake), removes random atoms (vacancies), displaces the
rest (frozen thermal displacements) and optionally adds an amorphous carbon film.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import mx2
from ase.data import atomic_numbers

from ..errors import ParameterError

#: Number density of amorphous carbon at 2.0 g/cm³, in atoms per Å³.
AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3 = 2.0 / 12.011 * 6.02214076e23 * 1e-24


@dataclass(frozen=True)
class SpecimenSettings:
    """How a specimen is randomised.

    structure_file: any file ASE reads (periodic in-plane cell, or a finite cluster);
        ``None`` builds 1H-MoS2 with ``lattice_constant_angstrom``.
    vacancy_fraction_range: per element, the fraction of its atoms removed, drawn
        uniformly from (low, high) per specimen.
    thermal_rms_angstrom: rms of the Gaussian displacement per atom and axis.
    rotate: random in-plane rotation in [0°, 360°); translate: random shift within a cell.
    carbon_thickness_angstrom: amorphous carbon film (0 = none), 2.0 g/cm³.
    """

    structure_file: str | None = None
    lattice_constant_angstrom: float = 3.16
    vacancy_fraction_range: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"S": (0.0, 0.04), "Mo": (0.0, 0.01)})
    thermal_rms_angstrom: float = 0.06
    rotate: bool = True
    translate: bool = True
    carbon_thickness_angstrom: float = 0.0

    def __post_init__(self) -> None:
        for element, (low, high) in self.vacancy_fraction_range.items():
            if not 0.0 <= low <= high <= 1.0:
                raise ParameterError(f"vacancy fraction range for {element} must satisfy 0 ≤ low ≤ high ≤ 1")
        if self.thermal_rms_angstrom < 0 or self.carbon_thickness_angstrom < 0:
            raise ParameterError("thermal rms and carbon thickness must not be negative")


@dataclass(frozen=True)
class Specimen:
    """Projected atom positions (n, 2) (y, x) in Å in the box frame, atomic numbers (n,),
    and a description of the random choices made."""

    positions_angstrom: np.ndarray
    numbers: np.ndarray
    description: dict[str, float | int | str]


def base_structure(settings: SpecimenSettings) -> Atoms:
    """The unrandomised unit cell (or cluster) the specimen is cut from."""
    if settings.structure_file is None:
        return mx2(formula="MoS2", kind="2H", a=settings.lattice_constant_angstrom, thickness=3.19, vacuum=None)
    path = Path(settings.structure_file)
    if not path.is_file():
        raise ParameterError(f"structure file {path} does not exist")
    try:
        from ase.io import read

        atoms = read(str(path))
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ParameterError(f"cannot read structure file {path}: {exc}") from exc
    if isinstance(atoms, list):
        atoms = atoms[0]
    if len(atoms) == 0:
        raise ParameterError(f"structure file {path} holds no atoms")
    return atoms


def _tile_to_disc(atoms: Atoms, radius_angstrom: float, rng: np.random.Generator,
                  translate: bool) -> tuple[np.ndarray, np.ndarray]:
    """xy positions (centred on the origin) of a supercell covering a disc, and numbers."""
    periodic = bool(atoms.pbc[0] and atoms.pbc[1]) and atoms.cell.rank >= 2
    if not periodic:
        xy = atoms.positions[:, :2] - atoms.positions[:, :2].mean(axis=0)
        return xy, atoms.numbers.copy()
    cell = np.asarray(atoms.cell)[:2, :2]
    # height of the cell perpendicular to each in-plane vector
    area = abs(np.linalg.det(cell))
    heights = [area / np.linalg.norm(cell[1 - i]) for i in range(2)]
    reps = [int(math.ceil(2 * radius_angstrom / h)) + 2 for h in heights]
    supercell = atoms.repeat((reps[0], reps[1], 1))
    xy = supercell.positions[:, :2]
    centre = (reps[0] * cell[0] + reps[1] * cell[1]) / 2
    shift = rng.uniform(0, 1, 2) @ cell if translate else np.zeros(2)
    return xy - centre + shift, supercell.numbers.copy()


def _remove_vacancies(numbers: np.ndarray, settings: SpecimenSettings,
                      rng: np.random.Generator) -> tuple[np.ndarray, dict[str, int]]:
    keep = np.ones(len(numbers), dtype=bool)
    removed: dict[str, int] = {}
    for element, (low, high) in settings.vacancy_fraction_range.items():
        candidates = np.flatnonzero(numbers == atomic_numbers[element])
        count = int(round(rng.uniform(low, high) * len(candidates)))
        if count:
            keep[rng.choice(candidates, size=count, replace=False)] = False
        removed[f"vacancies_{element}"] = count
    return keep, removed


def generate_specimen(settings: SpecimenSettings, box_shape_angstrom: tuple[float, float],
                      rng: np.random.Generator) -> Specimen:
    """A random specimen filling a box (y, x) of ``box_shape_angstrom`` (origin at its corner)."""
    box = np.asarray(box_shape_angstrom, dtype=np.float64)
    radius = 0.5 * float(np.hypot(*box))
    xy, numbers = _tile_to_disc(base_structure(settings), radius, rng, settings.translate)
    angle = rng.uniform(0, 2 * math.pi) if settings.rotate else 0.0
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    xy = xy @ rotation.T
    yx = xy[:, ::-1] + box / 2
    inside = np.all((yx >= 0) & (yx < box), axis=1)
    yx, numbers = yx[inside], numbers[inside]
    keep, removed = _remove_vacancies(numbers, settings, rng)
    yx, numbers = yx[keep], numbers[keep]
    yx = yx + rng.normal(0.0, settings.thermal_rms_angstrom, yx.shape) if settings.thermal_rms_angstrom else yx
    description: dict[str, float | int | str] = {
        "structure": settings.structure_file or "MoS2-1H",
        "rotation_deg": math.degrees(angle),
        "atoms": int(len(numbers)),
        **removed,
    }
    if settings.carbon_thickness_angstrom > 0:
        areal_density = AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3 * settings.carbon_thickness_angstrom
        count = int(rng.poisson(areal_density * box[0] * box[1]))
        yx = np.concatenate([yx, rng.uniform(0, 1, (count, 2)) * box])
        numbers = np.concatenate([numbers, np.full(count, 6)])
        description["carbon_atoms"] = count
    return Specimen(positions_angstrom=yx, numbers=numbers, description=description)
