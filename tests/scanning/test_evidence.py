import numpy as np

from scan_server.scanning.evidence import CHANNELS, evidence_maps, material_levels, sample_map, splat

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
    np.testing.assert_allclose(relative, 0.0, atol=1e-5)
    assert not evidence_maps(positions, np.full(400, 0.01), EXTENT, 32).levels.vacuum_seen


def test_vacuum_on_one_side_shows_in_the_relative_dark_field_and_coverage_rises_with_positions():
    rng = np.random.default_rng(2)
    positions = rng.random((300, 2))
    dark_field = np.where(positions[:, 1] < 0.5, 3e-4, 1e-2)  # vacuum on the left (x < ½)
    maps = evidence_maps(positions, dark_field, EXTENT, 32).maps
    relative = maps[CHANNELS.index("dark_field_relative_1A")]
    assert relative[:, :12].mean() < -0.9 and abs(relative[:, 20:].mean()) < 0.1  # the session's scale: −1 vacuum
    sparse = evidence_maps(positions[:30], dark_field[:30], EXTENT, 32).maps
    coverage = CHANNELS.index("coverage_1A")
    assert sparse[coverage].mean() < maps[coverage].mean() <= 1.0


def test_the_levels_are_the_sessions_own_whatever_the_contrast():
    """Half a decade (a blurred detector) or three (a sharp one): the same decision, the same scale."""
    rng = np.random.default_rng(4)
    positions = rng.random((250, 2))
    material = 1e-2 * rng.lognormal(0.0, 0.3, 250)  # atomic-scale spread over the material
    for vacuum_level in (3e-3, 1e-5):
        dark_field = np.where(positions[:, 1] < 0.4, vacuum_level * rng.lognormal(0.0, 0.2, 250), material)
        levels = material_levels(positions * EXTENT, dark_field, EXTENT)
        assert levels.vacuum_seen and levels.coherence > 0.8
        assert abs(levels.material_log + 2) < 0.1 and abs(levels.vacuum_log - np.log10(vacuum_level)) < 0.1
        relative = levels.relative(np.log10(dark_field))
        assert np.median(relative[positions[:, 1] < 0.4]) < -0.9


def test_a_film_has_no_vacuum_level_however_its_dark_field_scatters():
    """A film's pattern-to-pattern spread (atoms, noise; even a decade) is not a place: no vacuum level."""
    rng = np.random.default_rng(5)
    positions = rng.random((250, 2))
    for spread in (0.1, 1.0, 2.5):
        film = 1e-2 * rng.lognormal(0.0, spread, 250)
        assert not material_levels(positions * EXTENT, film, EXTENT).vacuum_seen


def test_blanked_frames_and_zero_dark_field_are_handled():
    rng = np.random.default_rng(6)
    positions = rng.random((100, 2))
    dark_field = np.where(positions[:, 0] < 0.5, 0.0, 1e-2 * rng.lognormal(0.0, 0.2, 100))  # vacuum: zero counts
    dark_field[::10] = np.nan                                                                  # blanked: no evidence
    levels = material_levels(positions * EXTENT, dark_field, EXTENT)
    assert levels.vacuum_seen and np.isfinite(levels.vacuum_log) and levels.floor > 0
    maps = evidence_maps(positions, dark_field, EXTENT, 32).maps
    assert np.isfinite(maps).all()
