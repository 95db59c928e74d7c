"""Region- and truth-referenced scores of a reconstruction (the yardstick; docs/evaluation.md).

Every reconstruction of a recording is scored against one ``ScoreReference``: the
full-data reconstruction, the material mask derived from it, and the true phase when
the recording carries one. Scores (all over the scanned field of view):

* ``ssim_field``: SSIM against the full-data reconstruction over the whole field (the
  paper's protocol; in vacuum that reference is noise, so this score punishes a scan
  that skips vacuum);
* ``ssim_material``: the SSIM map against the full-data reconstruction, averaged over
  the material only (offsets removed over the material);
* ``r_material``: Pearson r with the full-data reconstruction over the material — the
  truth score's functional (offset- and scale-free) with the full-data reconstruction in
  place of the truth, for recordings that have none;
* ``r_true_material``: Pearson r with the true phase (low-passed to the reconstruction's
  sampling) over the material; ``ssim_true_material``: SSIM against it over the material.
  Both ``None`` without a ground truth.

The material mask (``material_mask``) is local texture: vacuum is flat up to noise,
matter is not, whatever the offset between them. The standard deviation of the phase
in a Gaussian window (σ = 1 Å) is split in two classes by Otsu's threshold; the split
is kept only when the textured class is at least ``MATERIAL_CONTRAST`` times the flat one
(otherwise the field is one material, as a homogeneous film is); specks and gaps smaller
than about 1 Å are closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.metrics import structural_similarity

from ..contracts import GroundTruth, ObjectGrid
from ..errors import ParameterError
from .metrics import pearson, resample_to_grid, resolution_angstrom, ssim_phase

#: σ of the Gaussian window of the local texture, in Å
MATERIAL_TEXTURE_SIGMA_ANGSTROM = 1.0
#: the textured class must have this many times the flat class's mean texture to be a split
MATERIAL_CONTRAST = 3.0
#: openings and closings of the mask use a disc of this radius, in Å
MATERIAL_CLEAN_RADIUS_ANGSTROM = 1.0
#: the score that dose ratios use when every recording carries a ground truth / when one does not
HEADLINE_WITH_TRUTH = "r_true_material"
HEADLINE_WITHOUT_TRUTH = "r_material"
SCORE_NAMES = ("ssim_field", "ssim_material", "r_material", "r_true_material", "ssim_true_material")
#: the scores that need no truth (checked against the truth where one exists: evaluation/agreement.py)
TRUTH_FREE_SCORES = ("ssim_field", "ssim_material", "r_material")


def local_texture(phase: np.ndarray, pixel_size_angstrom: float,
                  sigma_angstrom: float = MATERIAL_TEXTURE_SIGMA_ANGSTROM) -> np.ndarray:
    """Standard deviation of the phase (H, W) rad in a Gaussian window of σ Å, (H, W) rad."""
    image = np.asarray(phase, dtype=np.float64)
    sigma_px = sigma_angstrom / pixel_size_angstrom
    mean = ndimage.gaussian_filter(image, sigma_px, mode="reflect")
    mean_square = ndimage.gaussian_filter(image**2, sigma_px, mode="reflect")
    return np.sqrt(np.clip(mean_square - mean**2, 0.0, None))


def _disc(radius_px: float) -> np.ndarray:
    r = max(1, int(round(radius_px)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy**2 + xx**2 <= radius_px**2 + 0.5


def material_mask(phase: np.ndarray, pixel_size_angstrom: float) -> np.ndarray:
    """Where the phase (H, W) of a well-converged reconstruction shows material: a boolean
    (H, W) mask by the local-texture rule of this module's docstring."""
    texture = local_texture(phase, pixel_size_angstrom)
    if np.ptp(texture) == 0:
        return np.ones(texture.shape, dtype=bool)
    textured = texture > threshold_otsu(texture)
    if textured.all() or not textured.any() or \
            texture[textured].mean() < MATERIAL_CONTRAST * texture[~textured].mean():
        return np.ones(texture.shape, dtype=bool)
    disc = _disc(MATERIAL_CLEAN_RADIUS_ANGSTROM / pixel_size_angstrom)
    pad = disc.shape[0]  # the field's edge is no boundary: continue the mask beyond it while cleaning
    padded = np.pad(textured, pad, mode="edge")
    cleaned = ndimage.binary_closing(ndimage.binary_opening(padded, disc), disc)[pad:-pad, pad:-pad]
    return cleaned if cleaned.any() else textured


@dataclass(frozen=True)
class Scores:
    """One reconstruction's scores (see the module docstring); ``None`` where undefined."""

    ssim_field: float
    ssim_material: float | None
    r_material: float | None
    r_true_material: float | None
    ssim_true_material: float | None
    resolution_angstrom: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"ssim_field": self.ssim_field, "ssim_material": self.ssim_material, "r_material": self.r_material,
                "r_true_material": self.r_true_material, "ssim_true_material": self.ssim_true_material,
                "resolution_angstrom": self.resolution_angstrom}


@dataclass(frozen=True)
class ScoreReference:
    """What every reconstruction of one recording is scored against: the full-data phase
    (H, W) rad on ``grid``, the scanned ``region`` of it, the material mask over the region
    (h, w) and the true phase on ``grid`` (H, W) rad or ``None``."""

    phase_rad: np.ndarray
    grid: ObjectGrid
    region: tuple[slice, slice]
    material: np.ndarray
    truth_rad: np.ndarray | None

    @classmethod
    def build(cls, full_phase_rad: np.ndarray, grid: ObjectGrid, region: tuple[slice, slice],
              truth: GroundTruth | None) -> ScoreReference:
        material = material_mask(full_phase_rad[region], grid.pixel_size_angstrom)
        truth_rad = resample_to_grid(truth, grid) if truth is not None else None
        return cls(full_phase_rad, grid, region, material, truth_rad)

    @property
    def material_fraction(self) -> float:
        return float(self.material.mean())

    def material_at(self, positions_angstrom: np.ndarray) -> np.ndarray:
        """Whether the mask shows material at positions (n, 2) Å (nearest pixel; outside
        the scanned region: no), (n,) bool."""
        positions = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 2)
        pixel = np.rint((positions - np.asarray(self.grid.origin_angstrom)) / self.grid.pixel_size_angstrom)
        pixel = pixel.astype(np.int64) - np.array([self.region[0].start, self.region[1].start])
        inside = np.all((pixel >= 0) & (pixel < np.asarray(self.material.shape)), axis=1)
        result = np.zeros(len(positions), dtype=bool)
        result[inside] = self.material[pixel[inside, 0], pixel[inside, 1]]
        return result

    def score(self, phase_rad: np.ndarray) -> Scores:
        """Every score of a reconstruction (H, W) rad on this reference's grid."""
        image = np.asarray(phase_rad, dtype=np.float64)
        field = ssim_phase(image, self.phase_rad, self.region)
        crop = image[self.region]
        material = ssim_over_mask(crop, self.phase_rad[self.region], self.material)
        r_material = pearson(crop[self.material], self.phase_rad[self.region][self.material])
        r_true = ssim_true = None
        if self.truth_rad is not None:
            truth = self.truth_rad[self.region]
            r_true = pearson(crop[self.material], truth[self.material])
            ssim_true = ssim_over_mask(crop, truth, self.material)
        return Scores(field, material, r_material, r_true, ssim_true,
                      resolution_angstrom(crop, self.grid.pixel_size_angstrom))


def ssim_over_mask(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of ``image`` against ``reference`` (both (h, w)) averaged over ``mask`` (h, w):
    offsets removed over the mask, data range from the reference over the mask."""
    if image.shape != reference.shape or image.shape != mask.shape or min(image.shape) < 7:
        raise ParameterError(f"SSIM needs equal images and mask of at least 7 × 7 px, got {image.shape}, "
                             f"{reference.shape} and {mask.shape}")
    if not mask.any():
        raise ParameterError("the material mask is empty: nothing to score")
    a = image - image[mask].mean()
    b = reference - reference[mask].mean()
    data_range = float(b[mask].max() - b[mask].min())
    if data_range == 0:
        raise ParameterError("the reference is constant over the material: SSIM is undefined")
    _, ssim_map = structural_similarity(a, b, data_range=data_range, full=True)
    return float(ssim_map[mask].mean())
