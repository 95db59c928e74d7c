import numpy as np
import pytest
from ase.build import graphene
from ase.io import write
from scipy.spatial import cKDTree

from scan_server.errors import ParameterError
from scan_server.physics.specimen import (AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3, SpecimenSettings,
                                          generate_specimen)

PERFECT = SpecimenSettings(vacancy_fraction_range={}, thermal_rms_angstrom=0.0)


def test_perfect_mos2_has_the_right_projected_geometry(rng):
    specimen = generate_specimen(PERFECT, (30.0, 30.0), rng)
    mo = specimen.positions_angstrom[specimen.numbers == 42]
    s = specimen.positions_angstrom[specimen.numbers == 16]
    # S atoms come in pairs on one column; Mo:S ≈ 1:2 inside the box
    assert len(s) / len(mo) == pytest.approx(2.0, rel=0.08)
    # projected Mo–S distance a/√3 and Mo–Mo distance a
    distance, _ = cKDTree(s).query(mo[np.all((mo > 3) & (mo < 27), axis=1)])
    assert np.allclose(distance, 3.16 / np.sqrt(3), atol=1e-6)
    distance, _ = cKDTree(mo).query(mo, k=2)
    assert np.median(distance[:, 1]) == pytest.approx(3.16, abs=1e-6)
    assert np.all((specimen.positions_angstrom >= 0) & (specimen.positions_angstrom < 30))


def test_vacancies_remove_the_drawn_fraction(rng):
    settings = SpecimenSettings(vacancy_fraction_range={"S": (0.1, 0.1), "Mo": (0.05, 0.05)},
                                thermal_rms_angstrom=0.0, rotate=False, translate=False)
    perfect = generate_specimen(SpecimenSettings(vacancy_fraction_range={}, thermal_rms_angstrom=0.0,
                                                 rotate=False, translate=False), (20.0, 20.0), rng)
    defective = generate_specimen(settings, (20.0, 20.0), rng)
    n_s = int((perfect.numbers == 16).sum())
    assert defective.description["vacancies_S"] == round(0.1 * n_s)
    assert int((defective.numbers == 16).sum()) == n_s - defective.description["vacancies_S"]


def test_seeded_generation_is_reproducible_and_seeds_differ():
    a = generate_specimen(SpecimenSettings(), (20.0, 20.0), np.random.default_rng(5))
    b = generate_specimen(SpecimenSettings(), (20.0, 20.0), np.random.default_rng(5))
    c = generate_specimen(SpecimenSettings(), (20.0, 20.0), np.random.default_rng(6))
    assert np.array_equal(a.positions_angstrom, b.positions_angstrom)
    assert a.description["rotation_deg"] != c.description["rotation_deg"]


def test_thermal_displacements_have_the_requested_rms(rng):
    settings = SpecimenSettings(vacancy_fraction_range={}, thermal_rms_angstrom=0.1, rotate=False, translate=False)
    still = generate_specimen(SpecimenSettings(vacancy_fraction_range={}, thermal_rms_angstrom=0.0, rotate=False,
                                               translate=False), (25.0, 25.0), np.random.default_rng(0))
    shaken = generate_specimen(settings, (25.0, 25.0), np.random.default_rng(0))
    _, nearest = cKDTree(still.positions_angstrom).query(shaken.positions_angstrom)
    displacement = shaken.positions_angstrom - still.positions_angstrom[nearest]
    assert displacement.std() == pytest.approx(0.1, rel=0.1)


def test_amorphous_carbon_has_the_areal_density(rng):
    settings = SpecimenSettings(vacancy_fraction_range={}, carbon_thickness_angstrom=10.0)
    specimen = generate_specimen(settings, (40.0, 40.0), rng)
    expected = AMORPHOUS_CARBON_ATOMS_PER_ANGSTROM3 * 10.0 * 1600
    assert specimen.description["carbon_atoms"] == pytest.approx(expected, rel=0.1)


def test_user_structure_file(tmp_path, rng):
    path = tmp_path / "graphene.cif"
    write(str(path), graphene(a=2.46, vacuum=5.0))
    settings = SpecimenSettings(structure_file=str(path), vacancy_fraction_range={}, thermal_rms_angstrom=0.0)
    specimen = generate_specimen(settings, (30.0, 30.0), rng)
    assert set(np.unique(specimen.numbers)) == {6}
    atoms_per_area = 2 / (2.46**2 * np.sqrt(3) / 2)
    assert len(specimen.numbers) == pytest.approx(atoms_per_area * 900, rel=0.05)


def test_unreadable_structure_file_is_a_clear_error(tmp_path, rng):
    path = tmp_path / "nonsense.xyz"
    path.write_text("this is not a structure\n")
    with pytest.raises(ParameterError, match="cannot read structure file"):
        generate_specimen(SpecimenSettings(structure_file=str(path)), (10.0, 10.0), rng)
    with pytest.raises(ParameterError, match="does not exist"):
        generate_specimen(SpecimenSettings(structure_file=str(tmp_path / "missing.cif")), (10.0, 10.0), rng)
