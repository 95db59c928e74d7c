"""Specimen families: each family's random choices stay in their documented ranges, and the
atoms are where the family says (vacuum is empty, the material fraction is what is described)."""

import numpy as np
import pytest
from ase.build import graphene
from ase.io import write
from scipy.spatial import cKDTree

from scan_server.errors import ParameterError
from scan_server.physics.families import (MIXED, SPECIMEN_FAMILIES, SpecimenFrame, family_for_seed,
                                          generate_family_specimen)
from scan_server.physics.simulate import SimulationSettings
from scan_server.physics.specimen import SpecimenSettings

FRAME = SpecimenFrame((38.0, 38.0), (9.0, 9.0), (28.8, 28.8))  # the paper's 19.8 Å field in its box
SETTINGS = SpecimenSettings()
SEEDS = range(8)


def specimens(family: str) -> list:
    return [generate_family_specimen(family, SETTINGS, FRAME, np.random.default_rng(seed)) for seed in SEEDS]


def in_field(yx: np.ndarray) -> np.ndarray:
    return np.all((yx >= FRAME.field_low_angstrom) & (yx <= FRAME.field_high_angstrom), axis=1)


def test_film_is_today_s_specimen_with_its_family_recorded():
    from scan_server.physics.specimen import generate_specimen

    for specimen, seed in zip(specimens("film"), SEEDS):
        plain = generate_specimen(SETTINGS, FRAME.box_angstrom, np.random.default_rng(seed))
        assert np.array_equal(specimen.positions_angstrom, plain.positions_angstrom)
        assert specimen.description["family"] == "film" and specimen.description["material_fraction_field"] == 1


def test_holes_are_empty_and_within_the_documented_ranges():
    for specimen in specimens("holes"):
        d = specimen.description
        assert 1 <= d["holes"] <= 4 and all(2.0 <= r <= 8.0 for r in d["hole_radii_angstrom"])
        assert 0.0 < d["material_fraction_field"] < 1.0
        for centre, radius in zip(d["hole_centres_angstrom"], d["hole_radii_angstrom"]):
            assert np.linalg.norm(specimen.positions_angstrom - centre, axis=1).min() >= radius - 1e-9
        # the field's area fraction without atoms nearby matches the described vacuum: a lattice point
        # farther than 2.2 Å from every atom is vacuum (MoS2: every film point is within 1.9 Å of an atom)
        points = FRAME.field_points(0.2)
        distance, _ = cKDTree(specimen.positions_angstrom).query(points)
        assert (distance > 2.2).mean() <= 1 - d["material_fraction_field"] + 1e-9


def test_edge_keeps_a_half_plane_covering_35_to_80_percent_of_the_field():
    for specimen in specimens("edge"):
        d = specimen.description
        assert 0.34 <= d["material_fraction_field"] <= 0.81
        angle = np.radians(d["edge_normal_deg"])
        projection = specimen.positions_angstrom @ np.array([np.sin(angle), np.cos(angle)])
        points = FRAME.field_points()
        offset = np.quantile(points @ np.array([np.sin(angle), np.cos(angle)]), 1 - d["material_fraction_field"])
        assert projection.min() >= offset - 1e-6  # nothing on the vacuum side


def test_island_is_a_flake_in_vacuum():
    fractions = []
    for specimen in specimens("island"):
        yx = specimen.positions_angstrom
        centre = yx.mean(axis=0)
        assert np.linalg.norm(yx - centre, axis=1).max() <= 2 * 10.0  # within its polygon's diameter
        assert np.linalg.norm(centre - FRAME.centre_angstrom) < 5.0
        fractions.append(specimen.description["material_fraction_field"])
    assert 0.2 <= min(fractions) and max(fractions) <= 0.85


def test_particles_are_metal_clusters_of_5_to_15_angstrom_on_thin_carbon():
    for specimen in specimens("particles"):
        d = specimen.description
        assert d["structure"] in ("Au", "Pt") and 1 <= d["particles"] <= 3
        assert all(5.0 <= size <= 15.0 for size in d["particle_diameters_angstrom"])
        assert 2.0 <= d["support_thickness_angstrom"] <= 5.0
        metal = specimen.numbers > 6
        assert set(np.unique(specimen.numbers[~metal])) == {6}
        assert metal.sum() > 0 and in_field(specimen.positions_angstrom[metal]).mean() > 0.5
        assert 0 < d["particle_fraction_field"] < 1 and d["material_fraction_field"] == 1.0


def test_contamination_adds_carbon_patches_over_part_of_a_film():
    for specimen in specimens("contamination"):
        d = specimen.description
        assert 1 <= d["patches"] <= 3 and all(3.0 <= r <= 8.0 for r in d["patch_radii_angstrom"])
        assert all(5.0 <= t <= 20.0 for t in d["patch_peak_thickness_angstrom"])
        assert int((specimen.numbers == 6).sum()) == d["contamination_atoms"] > 0
        assert 0 < d["contamination_fraction_field"] < 1


def test_mixed_cycles_through_every_family_by_seed():
    families = [family_for_seed(MIXED, seed) for seed in range(50000, 50012)]
    assert sorted(families) == sorted(SPECIMEN_FAMILIES * 2)
    assert family_for_seed("edge", 3) == "edge"
    with pytest.raises(ParameterError, match="unknown specimen family 'rocks'"):
        family_for_seed("rocks", 0)
    with pytest.raises(ParameterError, match="unknown specimen family"):
        SimulationSettings(family="rocks")


@pytest.mark.parametrize("family", SPECIMEN_FAMILIES)
def test_a_structure_file_works_with_every_family(family, tmp_path):
    path = tmp_path / "graphene.cif"
    write(str(path), graphene(a=2.46, vacuum=5.0))
    settings = SpecimenSettings(structure_file=str(path), vacancy_fraction_range={})
    specimen = generate_family_specimen(family, settings, FRAME, np.random.default_rng(1))
    assert set(np.unique(specimen.numbers)) == {6} and len(specimen.numbers) > 50
