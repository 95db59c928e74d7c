"""The yardstick's scores and the material-mask rule, on synthetic phases with known answers."""

import numpy as np
import pytest

from scan_server.contracts import GroundTruth, ObjectGrid
from scan_server.evaluation.metrics import pearson, ssim_phase
from scan_server.evaluation.scores import ScoreReference, material_mask, ssim_over_mask

PIXEL = 0.33  # Å, the reconstruction pixel of the paper's geometry


def film(shape=(80, 80), spacing_angstrom=3.16, rng=None) -> np.ndarray:
    """A hexagonal lattice of Gaussian atoms (0.3 Å wide, 0.5 rad), rotated by 0.3 rad."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] * PIXEL
    image = np.zeros(shape)
    a1 = spacing_angstrom * np.array([np.cos(0.3), np.sin(0.3)])
    a2 = spacing_angstrom * np.array([np.cos(0.3 + np.pi / 3), np.sin(0.3 + np.pi / 3)])
    for i in range(-20, 21):
        for j in range(-20, 21):
            y, x = i * a1 + j * a2
            if -2 < y < shape[0] * PIXEL + 2 and -2 < x < shape[1] * PIXEL + 2:
                image += 0.5 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 0.3**2))
    return image


def test_a_homogeneous_film_is_all_material():
    rng = np.random.default_rng(0)
    assert material_mask(film() + 0.01 * rng.normal(size=(80, 80)), PIXEL).all()


@pytest.mark.parametrize("offset_rad", [0.0, 0.4, -0.3])
def test_vacuum_is_found_whatever_its_offset_from_the_film(offset_rad):
    """Half film, half vacuum (noise only) at another mean phase: the rule on texture finds the
    edge within 2.5 Å (an offset step is texture too, over the σ = 1 Å window), where a rule on
    |phase − median| would be fooled by the offset."""
    rng = np.random.default_rng(1)
    image = film()
    true_material = np.zeros(image.shape, dtype=bool)
    true_material[:, :40] = True
    image[:, 40:] = offset_rad
    image += 0.01 * rng.normal(size=image.shape)
    mask = material_mask(image, PIXEL)
    assert (mask == true_material).mean() > 0.9
    edge = int(round(2.5 / PIXEL))
    assert mask[edge:-edge, edge:40 - edge].all()  # wrong only near the edge (and the image border)
    assert not mask[:, 40 + edge:].any()


def test_a_disc_of_vacuum_in_a_film_is_found():
    rng = np.random.default_rng(2)
    image = film()
    yy, xx = np.mgrid[:80, :80]
    hole = (yy - 40) ** 2 + (xx - 40) ** 2 < (6.0 / PIXEL) ** 2  # 6 Å radius
    image[hole] = 0.0
    image += 0.01 * rng.normal(size=image.shape)
    mask = material_mask(image, PIXEL)
    assert not mask[40, 40] and (mask == ~hole).mean() > 0.95


def test_ssim_over_a_full_mask_and_identical_images():
    rng = np.random.default_rng(3)
    reference = film()
    noisy = reference + 0.1 * rng.normal(size=reference.shape)
    everywhere = np.ones(reference.shape, dtype=bool)
    assert ssim_over_mask(reference, reference, everywhere) == pytest.approx(1.0)
    region = (slice(0, 80), slice(0, 80))
    # over the whole image the masked SSIM is the SSIM map's mean, as skimage's score without its border
    assert ssim_over_mask(noisy, reference, everywhere) == pytest.approx(ssim_phase(noisy, reference, region),
                                                                        abs=0.03)


def test_scores_ignore_vacuum_where_the_field_score_does_not():
    """Reconstruction A equals the reference on the film and is flat in the vacuum, B copies the
    reference's vacuum noise and is noisy on the film: the field SSIM prefers B, the material
    scores prefer A, and A's r with the truth over the material is 1."""
    rng = np.random.default_rng(4)
    truth = film()
    truth[:, 40:] = 0.0
    reference = truth + 0.01 * rng.normal(size=truth.shape)
    a = truth.copy()
    b = reference.copy()
    b[:, :40] += 0.15 * rng.normal(size=(80, 40))
    grid = ObjectGrid((80, 80), PIXEL, (0.0, 0.0))
    ref = ScoreReference.build(reference, grid, (slice(0, 80), slice(0, 80)), GroundTruth(truth, grid))
    assert 0.4 < ref.material_fraction < 0.6
    score_a, score_b = ref.score(a), ref.score(b)
    assert score_a.ssim_material > score_b.ssim_material
    assert score_a.r_true_material == pytest.approx(1.0, abs=1e-6)
    assert score_a.r_true_material > score_b.r_true_material
    assert score_a.r_true_material == pytest.approx(pearson(a[ref.material], truth[ref.material]))


def test_without_a_ground_truth_the_truth_scores_are_none():
    grid = ObjectGrid((80, 80), PIXEL, (0.0, 0.0))
    image = film()
    ref = ScoreReference.build(image, grid, (slice(0, 80), slice(0, 80)), None)
    scores = ref.score(image)
    assert scores.r_true_material is None and scores.ssim_true_material is None
    assert scores.ssim_field == pytest.approx(1.0) and scores.ssim_material == pytest.approx(1.0)


def test_material_at_looks_up_the_mask_by_position():
    grid = ObjectGrid((80, 80), PIXEL, (-1.0, -2.0))
    image = film()
    image[:, 40:] = 0.0
    ref = ScoreReference.build(image, grid, (slice(10, 70), slice(10, 70)), None)
    x_film, x_vacuum = -2.0 + 20 * PIXEL, -2.0 + 60 * PIXEL
    y = -1.0 + 40 * PIXEL
    assert ref.material_at(np.array([[y, x_film], [y, x_vacuum], [y, -2.0]])).tolist() == [True, False, False]
