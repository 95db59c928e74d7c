"""Units and electron-optical constants.

Conventions used across the project: lengths in Å, energies in eV, angles in mrad,
spatial frequencies in Å⁻¹ (no factor 2π). The unit is part of every physical name.
"""

from __future__ import annotations

import math

from scipy import constants as _c

from .errors import ParameterError

#: h²/(2π m0 e) = 2π a0 e in V·Å² (Kirkland 2010, eq. 5.9): converts an electron
#: scattering factor f_e(q) [Å] into the Fourier transform of the potential [V·Å³].
SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2 = (
    2 * math.pi * _c.physical_constants["Bohr radius"][0] * 1e10  # a0 in Å
    * _c.e / (4 * math.pi * _c.epsilon_0) * 1e10  # e/(4π ε0) in V·Å
)


def _check_energy(energy_ev: float) -> None:
    if not energy_ev > 0:
        raise ParameterError(f"beam energy must be positive, got {energy_ev} eV")


def electron_wavelength_angstrom(energy_ev: float) -> float:
    """Relativistic electron wavelength λ = h / sqrt(2 m0 e E (1 + e E / (2 m0 c²))) in Å."""
    _check_energy(energy_ev)
    m0c2_ev = _c.m_e * _c.c**2 / _c.e
    momentum = math.sqrt(2 * _c.m_e * _c.e * energy_ev * (1 + energy_ev / (2 * m0c2_ev)))
    return _c.h / momentum * 1e10


def interaction_constant_rad_per_volt_angstrom(energy_ev: float) -> float:
    """Interaction constant σ = 2π m e λ / h² (relativistic mass m), in rad / (V·Å).

    The transmission function of a thin specimen is exp(i σ v_z) with v_z the
    projected potential in V·Å (Kirkland 2010, eq. 5.6).
    """
    _check_energy(energy_ev)
    m0c2_ev = _c.m_e * _c.c**2 / _c.e
    wavelength_m = electron_wavelength_angstrom(energy_ev) * 1e-10
    mass_kg = _c.m_e * (1 + energy_ev / m0c2_ev)
    return 2 * math.pi * mass_kg * _c.e * wavelength_m / _c.h**2 * 1e-10


def mrad_to_inv_angstrom(angle_mrad: float, energy_ev: float) -> float:
    """Scattering angle (mrad) → spatial frequency k = α/λ (Å⁻¹), small-angle form."""
    return angle_mrad * 1e-3 / electron_wavelength_angstrom(energy_ev)


def inv_angstrom_to_mrad(k_inv_angstrom: float, energy_ev: float) -> float:
    """Spatial frequency (Å⁻¹) → scattering angle α = k λ (mrad), small-angle form."""
    return k_inv_angstrom * electron_wavelength_angstrom(energy_ev) * 1e3
