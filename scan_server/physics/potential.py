"""Projected potential of atoms from the Lobato & Van Dyck parameterisation.

Reference: I. Lobato and D. Van Dyck, "An accurate parameterization for scattering
factors, electron densities and electrostatic potentials for neutral atoms that obey
all physical constraints", Acta Cryst. A 70, 636–649 (2014). The coefficient table in
``data/lobato_2014.json`` (per element: [a_1..a_5] in Å, [b_1..b_5] in Å²) is the
published one, as distributed with abTEM 1.0.11.

Electron scattering factor: f_e(g) = Σ_i a_i (2 + b_i g²) / (1 + b_i g²)², g in Å⁻¹.
The 2-D Fourier transform of the projected potential v_z is (2π a0 e) f_e(|q|) per
atom (Kirkland 2010, eq. 5.9 restricted to q_z = 0), so on a periodic box of area A
v_z(r) = (2π a0 e / A) Σ_q f_e(q) S(q) exp(2πi q·r), S(q) = Σ_j exp(−2πi q·r_j).
The structure factor is separable, exp(−2πi(q_y y + q_x x)) = e_y ⊗ e_x, so S is one
complex matrix product per element. Atoms outside the padded box are ignored; the pad
keeps the periodic images of atoms near the edge out of the cropped result.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from ase.data import chemical_symbols

from ..contracts import ObjectGrid
from ..errors import ParameterError
from ..units import SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2


@lru_cache(maxsize=1)
def lobato_parameters() -> dict[str, np.ndarray]:
    """{symbol: (2, 5) array [[a_i in Å], [b_i in Å²]]} for Z = 1 … 103."""
    text = resources.files("scan_server.physics").joinpath("data/lobato_2014.json").read_text()
    return {symbol: np.asarray(values, dtype=np.float64) for symbol, values in json.loads(text).items()}


def _parameters(symbol: str) -> np.ndarray:
    table = lobato_parameters()
    if symbol not in table:
        raise ParameterError(f"no scattering parameters for element {symbol!r}")
    return table[symbol]


def scattering_factor_angstrom(symbol: str, g_inv_angstrom: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Electron scattering factor f_e(g) in Å at spatial frequency g (Å⁻¹, no 2π)."""
    g = torch.as_tensor(g_inv_angstrom, dtype=torch.float64)
    a, b = (torch.as_tensor(row, dtype=torch.float64, device=g.device) for row in _parameters(symbol))
    bg2 = b[:, None] * g.reshape(1, -1) ** 2
    f = (a[:, None] * (2 + bg2) / (1 + bg2) ** 2).sum(dim=0)
    return f.reshape(g.shape)


def projected_potential_volt_angstrom(positions_angstrom: np.ndarray, numbers: np.ndarray,
                                      grid: ObjectGrid, pad_angstrom: float = 4.0,
                                      device: torch.device | None = None) -> torch.Tensor:
    """Projected potential v_z (H, W) float64 in V·Å on ``grid``.

    positions_angstrom: (n, 2) atom positions (y, x) in the scan frame; numbers: (n,)
    atomic numbers. Computed on the grid padded by ``pad_angstrom`` on every side (atoms
    inside the padded box only), then cropped.
    """
    dx = grid.pixel_size_angstrom
    pad_px = int(math.ceil(pad_angstrom / dx))
    shape = (grid.shape_px[0] + 2 * pad_px, grid.shape_px[1] + 2 * pad_px)
    origin = np.asarray(grid.origin_angstrom) - pad_px * dx
    local = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2) - origin
    inside = np.all((local >= -0.5 * dx) & (local < (np.asarray(shape) - 0.5) * dx), axis=1)
    local, numbers = local[inside], np.asarray(numbers)[inside]

    q_y = torch.fft.fftfreq(shape[0], d=dx, dtype=torch.float64, device=device)
    q_x = torch.fft.fftfreq(shape[1], d=dx, dtype=torch.float64, device=device)
    q = torch.sqrt(q_y[:, None] ** 2 + q_x[None, :] ** 2)
    spectrum = torch.zeros(shape, dtype=torch.complex128, device=device)
    for number in np.unique(numbers):
        at = torch.as_tensor(local[numbers == number], dtype=torch.float64, device=device)
        e_y = torch.exp(-2j * math.pi * q_y[:, None] * at[None, :, 0])  # (Hy, n)
        e_x = torch.exp(-2j * math.pi * at[:, 1, None] * q_x[None, :])  # (n, Wx)
        structure = e_y @ e_x
        spectrum += scattering_factor_angstrom(chemical_symbols[int(number)], q) * structure
    area = shape[0] * shape[1] * dx * dx
    potential = torch.fft.ifft2(spectrum).real * (shape[0] * shape[1]) / area
    potential = potential * SCATTERING_TO_POTENTIAL_VOLT_ANGSTROM2
    return potential[pad_px:pad_px + grid.shape_px[0], pad_px:pad_px + grid.shape_px[1]]
