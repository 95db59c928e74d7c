import math

import numpy as np
import pytest
import torch
from ase.data import atomic_numbers
from scipy import integrate, special

from scan_server.contracts import ObjectGrid
from scan_server.errors import ParameterError
from scan_server.physics.potential import (lobato_parameters, projected_potential_volt_angstrom,
                                           scattering_factor_angstrom)
from scan_server.units import SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2

BOHR_ANGSTROM = 0.529177210903


def test_table_covers_hydrogen_to_lawrencium():
    assert len(lobato_parameters()) == 103
    assert lobato_parameters()["Mo"].shape == (2, 5)


@pytest.mark.parametrize("symbol", ["H", "C", "S", "Mo", "W", "Au", "U"])
def test_mott_bethe_asymptote(symbol):
    # For large g, f_e(g) → Z / (2π² a0 g²) (Mott–Bethe without the x-ray term); the
    # Lobato form gives Σ a_i / (b_i g²), so Σ a_i / b_i must equal Z / (2π² a0).
    a, b = lobato_parameters()[symbol]
    assert float((a / b).sum()) == pytest.approx(atomic_numbers[symbol] / (2 * math.pi**2 * BOHR_ANGSTROM),
                                                 rel=2e-3)
    g = torch.tensor([1000.0], dtype=torch.float64)  # beyond the narrowest term (b ≈ 1e-4 Å²)
    assert float(scattering_factor_angstrom(symbol, g) * g**2) == pytest.approx(float((a / b).sum()), rel=1e-2)


def test_unknown_element_is_refused():
    with pytest.raises(ParameterError):
        scattering_factor_angstrom("Xx", torch.tensor([0.0]))


def test_integrated_projected_potential_is_f_e_at_zero():
    dx = 0.1
    grid = ObjectGrid((128, 128), dx, (0.0, 0.0))
    positions = np.array([[6.3, 6.35], [3.1, 9.0]])
    numbers = np.array([42, 16])
    potential = projected_potential_volt_angstrom(positions, numbers, grid, pad_angstrom=0.0)
    total = float(potential.sum()) * dx * dx
    f0 = sum(float(scattering_factor_angstrom(s, torch.tensor([0.0]))) for s in ("Mo", "S"))
    assert total == pytest.approx(SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2 * f0, rel=1e-6)


def _hankel_projected_potential(symbol: str, r_angstrom: float) -> float:
    """v_z(r) = 2π a0 e · 2π ∫ f_e(q) J0(2π q r) q dq (plain quadrature)."""
    def integrand(q: float) -> float:
        return float(scattering_factor_angstrom(symbol, torch.tensor([q]))) * special.j0(2 * math.pi * q * r_angstrom) * q
    value, _ = integrate.quad(integrand, 0, 60, limit=800)
    return SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2 * 2 * math.pi * value


@pytest.mark.parametrize("r_angstrom", [0.5, 1.0, 1.5])
def test_single_atom_profile_matches_hankel_transform(r_angstrom):
    dx = 0.05
    grid = ObjectGrid((256, 256), dx, (0.0, 0.0))
    centre = 128 * dx
    potential = projected_potential_volt_angstrom(np.array([[centre, centre]]), np.array([42]), grid,
                                                  pad_angstrom=2.0)
    row = potential[128].numpy()
    x = np.arange(256) * dx - centre
    sampled = float(np.interp(r_angstrom, x, row))
    assert sampled == pytest.approx(_hankel_projected_potential("Mo", r_angstrom), rel=0.02)


def test_atom_peak_sits_at_its_position():
    grid = ObjectGrid((64, 64), 0.1, (10.0, -3.0))
    potential = projected_potential_volt_angstrom(np.array([[12.0, -1.0]]), np.array([16]), grid)
    assert np.unravel_index(int(potential.argmax()), (64, 64)) == (20, 20)
