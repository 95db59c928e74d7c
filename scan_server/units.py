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


def energy_ev_from_wavelength_angstrom(wavelength_angstrom: float) -> float:
    """Beam energy (eV) of electrons of relativistic wavelength λ (Å): E = √((hc/λ)² + (m0c²)²) − m0c²."""
    if not wavelength_angstrom > 0:
        raise ParameterError(f"wavelength must be positive, got {wavelength_angstrom} Å")
    m0c2_ev = _c.m_e * _c.c**2 / _c.e
    pc_ev = _c.h * _c.c / (wavelength_angstrom * 1e-10) / _c.e
    return math.sqrt(pc_ev**2 + m0c2_ev**2) - m0c2_ev


#: Units accepted for a detector pixel's reciprocal size, and their names in files.
RECIPROCAL_UNITS = {
    "1/nm": "1/nm", "nm^-1": "1/nm", "1/a": "1/A", "a^-1": "1/A", "1/å": "1/A", "å^-1": "1/A", "å⁻¹": "1/A",
    "1/angstrom": "1/A", "mrad": "mrad", "rad": "rad",
}


def detector_sampling_inv_angstrom(value: float, unit: str, energy_ev: float | None) -> float:
    """One detector pixel's size in Å⁻¹ from a value in 1/nm, Å⁻¹ (``1/A``), mrad or rad.
    Angles need the beam energy (k = α/λ)."""
    canonical = RECIPROCAL_UNITS.get(unit.strip().lower())
    if canonical is None:
        raise ParameterError(f"unknown detector sampling unit {unit!r}: use 1/nm, 1/A, mrad or rad")
    if not value > 0:
        raise ParameterError(f"detector sampling must be positive, got {value} {unit}")
    if canonical == "1/nm":
        return value / 10.0
    if canonical == "1/A":
        return value
    if energy_ev is None:
        raise ParameterError(f"a detector sampling in {unit} needs the beam energy (--energy-ev)")
    radians = value * 1e-3 if canonical == "mrad" else value
    return radians / electron_wavelength_angstrom(energy_ev)


def length_to_angstrom(value: float, unit: str) -> float:
    """A length in nm, Å (``A``), pm or m → Å."""
    factors = {"nm": 10.0, "a": 1.0, "å": 1.0, "angstrom": 1.0, "pm": 0.01, "m": 1e10, "um": 1e4, "µm": 1e4}
    factor = factors.get(unit.strip().lower())
    if factor is None:
        raise ParameterError(f"unknown length unit {unit!r}: use nm, A, pm or m")
    return value * factor
