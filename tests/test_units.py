import math

import pytest

from scan_server.errors import ParameterError
from scan_server.units import (SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2, electron_wavelength_angstrom,
                               interaction_constant_rad_per_volt_angstrom, inv_angstrom_to_mrad,
                               mrad_to_inv_angstrom)


@pytest.mark.parametrize("energy_ev, expected_angstrom", [
    (60e3, 0.04866),   # textbook value at 60 kV (e.g. Williams & Carter table 1.1: 4.87 pm)
    (100e3, 0.03701),
    (200e3, 0.02508),
    (300e3, 0.01969),
])
def test_relativistic_wavelength(energy_ev, expected_angstrom):
    assert electron_wavelength_angstrom(energy_ev) == pytest.approx(expected_angstrom, abs=2e-5)


def test_wavelength_is_relativistic_not_classical():
    classical = 12.2643 / math.sqrt(60e3)
    assert electron_wavelength_angstrom(60e3) < classical * 0.99


@pytest.mark.parametrize("energy_ev, expected", [(300e3, 6.5262e-4), (100e3, 9.2417e-4)])
def test_interaction_constant_matches_kirkland(energy_ev, expected):
    # Kirkland, Advanced Computing in Electron Microscopy (2010), σ in rad/(V·Å)
    assert interaction_constant_rad_per_volt_angstrom(energy_ev) == pytest.approx(expected, rel=2e-3)


def test_interaction_constant_closed_form():
    energy = 60e3
    m0c2 = 510998.95
    closed = 2 * math.pi / (electron_wavelength_angstrom(energy) * energy) * (m0c2 + energy) / (2 * m0c2 + energy)
    assert interaction_constant_rad_per_volt_angstrom(energy) == pytest.approx(closed, rel=1e-6)


def test_potential_prefactor_is_2_pi_a0_e():
    assert SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2 == pytest.approx(47.878, abs=1e-3)


def test_angle_conversions_round_trip():
    k = mrad_to_inv_angstrom(33.0, 60e3)
    assert k == pytest.approx(0.033 / 0.048661, rel=1e-4)
    assert inv_angstrom_to_mrad(k, 60e3) == pytest.approx(33.0)


def test_non_positive_energy_is_refused():
    with pytest.raises(ParameterError, match="positive"):
        electron_wavelength_angstrom(-1.0)
