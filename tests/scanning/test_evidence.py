import numpy as np

from scan_server.scanning.evidence import CHANNELS, evidence_maps, sample_map, splat

EXTENT = (20.0, 20.0)


def test_splat_keeps_the_sum_and_places_a_centred_point_on_its_pixel():
    values = np.array([2.0, 3.0, 5.0])
    positions = np.array([[0.1, 0.2], [0.55, 0.9], [1.0, 0.0]])
    assert np.isclose(splat(positions, values, 16).sum(), 10.0)
    centred = splat(np.array([[(4 + 0.5) / 16, (9 + 0.5) / 16]]), np.ones(1), 16)
    assert centred[4, 9] == 1.0 and centred.sum() == 1.0


def test_sample_map_is_exact_on_a_linear_ramp():
    m = 32
    centres = (np.arange(m) + 0.5) / m
    ramp = 3.0 * centres[:, None] + 2.0 * centres[None, :]
    points = np.random.default_rng(0).uniform(0.5 / m, 1 - 0.5 / m, (50, 2))
    np.testing.assert_allclose(sample_map(ramp, points), 3.0 * points[:, 0] + 2.0 * points[:, 1], atol=1e-12)


def test_a_uniform_dark_field_gives_flat_maps():
    positions = np.random.default_rng(1).random((400, 2))
    maps = evidence_maps(positions, np.full(400, 0.01), EXTENT, 32).maps
    assert maps.shape == (len(CHANNELS), 32, 32)
    relative = maps[CHANNELS.index("dark_field_relative_3A")]
    absolute = maps[CHANNELS.index("dark_field_log_3A")]
    np.testing.assert_allclose(relative, 0.0, atol=1e-5)
    np.testing.assert_allclose(absolute, np.log10(0.01) + 2.5, atol=1e-5)


def test_vacuum_on_one_side_shows_in_the_relative_dark_field_and_coverage_rises_with_positions():
    rng = np.random.default_rng(2)
    positions = rng.random((300, 2))
    dark_field = np.where(positions[:, 1] < 0.5, 3e-4, 1e-2)  # vacuum on the left (x < ½)
    maps = evidence_maps(positions, dark_field, EXTENT, 32).maps
    relative = maps[CHANNELS.index("dark_field_relative_1A")]
    assert relative[:, :12].mean() < -1.3 and abs(relative[:, 20:].mean()) < 0.1  # log10(3e-4 / 1e-2) ≈ −1.5
    sparse = evidence_maps(positions[:30], dark_field[:30], EXTENT, 32).maps
    coverage = CHANNELS.index("coverage_1A")
    assert sparse[coverage].mean() < maps[coverage].mean() <= 1.0
