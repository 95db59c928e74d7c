"""Figures: reconstructions with their scan positions and material mask, diffractograms,
and dose–quality curves."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow: a dependency of matplotlib)

from ..contracts import ObjectGrid  # noqa: E402
from ..scanning.registry import HALTON, ORACLE_MATERIAL, STRATEGIES  # noqa: E402
from .metrics import diffractogram  # noqa: E402


@dataclass(frozen=True)
class Panel:
    """One reconstruction to show: phase (H, W) rad on ``grid``, the scan region to crop,
    the positions used (n, 2) Å, a title, and the material mask over the region (h, w)."""

    title: str
    phase_rad: np.ndarray
    grid: ObjectGrid
    region: tuple[slice, slice]
    positions_angstrom: np.ndarray | None = None
    resolution_angstrom: float | None = None
    material: np.ndarray | None = None


def _extent(panel: Panel) -> list[float]:
    dx = panel.grid.pixel_size_angstrom
    y0 = panel.grid.origin_angstrom[0] + panel.region[0].start * dx
    x0 = panel.grid.origin_angstrom[1] + panel.region[1].start * dx
    h = (panel.region[0].stop - panel.region[0].start) * dx
    w = (panel.region[1].stop - panel.region[1].start) * dx
    return [x0 - dx / 2, x0 + w - dx / 2, y0 + h - dx / 2, y0 - dx / 2]


def draw_phase(ax: plt.Axes, panel: Panel, show_positions: bool = True) -> None:
    image = panel.phase_rad[panel.region]
    extent = _extent(panel)
    shown = ax.imshow(image, cmap="gray", extent=extent)
    if panel.material is not None and not panel.material.all():
        ax.contour(panel.material.astype(float), [0.5], colors="tab:orange", linewidths=0.8,
                   extent=[extent[0], extent[1], extent[3], extent[2]], origin="upper")
    if show_positions and panel.positions_angstrom is not None and len(panel.positions_angstrom) <= 2000:
        ax.scatter(panel.positions_angstrom[:, 1], panel.positions_angstrom[:, 0], s=3, c="tab:red", alpha=0.7)
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    plt.colorbar(shown, ax=ax, fraction=0.046, label="phase (rad)")


def draw_diffractogram(ax: plt.Axes, panel: Panel, q_max_inv_angstrom: float = 1.6) -> None:
    power, _ = diffractogram(panel.phase_rad[panel.region], panel.grid.pixel_size_angstrom)
    n_y, n_x = power.shape
    dq_y = 1.0 / (n_y * panel.grid.pixel_size_angstrom)
    dq_x = 1.0 / (n_x * panel.grid.pixel_size_angstrom)
    extent = [-n_x / 2 * dq_x, (n_x / 2) * dq_x, (n_y / 2) * dq_y, -n_y / 2 * dq_y]
    shown = ax.imshow(np.log10(power + power.max() * 1e-9), cmap="magma", extent=extent)
    plt.colorbar(shown, ax=ax, fraction=0.046, label="log₁₀ power")
    ax.set_xlim(-q_max_inv_angstrom, q_max_inv_angstrom)
    ax.set_ylim(q_max_inv_angstrom, -q_max_inv_angstrom)
    if panel.resolution_angstrom:
        circle = plt.Circle((0, 0), 1 / panel.resolution_angstrom, fill=False, color="cyan", lw=0.8, ls="--")
        ax.add_patch(circle)
        label = f"finest reflection: {panel.resolution_angstrom:.2f} Å"
    else:
        label = "no reflection above the noise"
    ax.set_title(label, fontsize=8)
    ax.set_xlabel("q_x (Å⁻¹)")


def save_png(fig: plt.Figure, path: str | Path, dpi: int) -> Path:
    """Lay out, write and close a figure as a 256-colour PNG (folders made as needed):
    reconstructions and diffractograms are noisy and compress badly as RGBA; the palette
    (median cut) is about 2.5× smaller and looks the same."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    plt.close(fig)
    return path


def save_comparison(path: str | Path, panels: Sequence[Panel], suptitle: str = "", dpi: int = 80) -> Path:
    """Phases (top row) and diffractograms (bottom row) side by side, as a PNG (80 dpi,
    256 colours: about 130 kB for five panels, small enough to keep reports in the repository)."""
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 8), squeeze=False)
    for column, panel in enumerate(panels):
        draw_phase(axes[0, column], panel)
        draw_diffractogram(axes[1, column], panel)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save_png(fig, path, dpi)


def save_phase(path: str | Path, panel: Panel) -> Path:
    """One reconstruction (phase and positions) as a PNG."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    draw_phase(ax, panel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


#: the dose–quality figure's colours, one per strategy in the registry's order (references dashed)
_COLOURS = ("tab:blue", "tab:green", "tab:gray", "tab:purple", "tab:brown", "tab:red", "tab:olive", "tab:cyan")


def _style(name: str) -> tuple[str, str]:
    if name not in STRATEGIES:
        return "black", "-"
    return _COLOURS[list(STRATEGIES).index(name) % len(_COLOURS)], "--" if STRATEGIES[name].reference else "-"


def save_dose_quality(path: str | Path, report: dict, dpi: int = 90) -> Path:
    """Score against positions, one line per strategy and one panel per score (mean over the
    recordings); the band between Halton and the oracle is what skipping vacuum can gain."""
    counts = report["positions"]
    scores = [s for s in ("ssim_field", "ssim_material", "r_true_material")
              if all(report["scores"][HALTON][str(c)][s] is not None for c in counts)]
    fig, axes = plt.subplots(1, len(scores), figsize=(4.6 * len(scores), 4), squeeze=False)
    for ax, score in zip(axes[0], scores):
        curves = {name: [entry[str(c)][score] for c in counts] for name, entry in report["scores"].items()}
        if ORACLE_MATERIAL in curves:
            ax.fill_between(counts, curves[HALTON], curves[ORACLE_MATERIAL], color="tab:red", alpha=0.12,
                            label="Halton → oracle band")
        for name, values in curves.items():
            colour, line = _style(name)
            label = f"{name} (reference)" if name in report["references"] else name
            ax.plot(counts, values, line, marker="o", ms=3, color=colour, label=label)
        ax.axvline(report["reference_positions"], color="black", lw=0.6, ls=":")
        headline = " (headline)" if score == report["headline_score"] else ""
        ax.set_title(f"{score}{headline}", fontsize=9)
        ax.set_xlabel("positions (dose ∝ positions)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("score (mean over recordings)")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{len(report['recordings'])} recordings, final reconstructions with "
                 f"{report['final_iterations']} iterations", fontsize=9)
    return save_png(fig, path, dpi)
