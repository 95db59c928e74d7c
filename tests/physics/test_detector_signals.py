"""The detector calibrated from the patterns (physics/calibration.py, physics/detector_signals.py),
tested against recordings simulated with known detector imperfections (physics/detector.py)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from scan_server.contracts import Acquisition, ProbeOptics
from scan_server.errors import ParameterError
from scan_server.io.open import open_recording
from scan_server.physics.calibration import calibrate, calibrated_dark_field, find_bad_pixels
from scan_server.physics.detector import DetectorDefects, DetectorModel, descan_shift_px
from scan_server.physics.detector_signals import (SETTLE_PATTERNS, DarkFieldMeter, acquisition_nominal_radius_px,
                                                  calibrate_recording, recording_dark_field)
from scan_server.physics.simulate import preset, simulate_recording

OPTICS = ProbeOptics(energy_ev=60e3, semiangle_mrad=25.0, c10_angstrom=-50.0)
#: a 20 Å field at a coarse step: every family's shapes, 2,500 patterns
COARSE = preset("paper", scan_shape=(50, 50), scan_step_angstrom=0.4)
IMPERFECT = DetectorModel(psf_px=1.0, descan_px=1.3, descan_angle_deg=30.0, semiangle_error=0.03,
                          gain_spread=0.03, dark_counts=0.05, hot_pixels=4, dead_pixels=2)


def _disc_pattern(radius_px: float, size: int = 64, centre: tuple[float, float] = (32.0, 32.0),
                  outside: float = 0.0) -> np.ndarray:
    rows, columns = np.indices((size, size))
    inside = np.hypot(rows - centre[0], columns - centre[1]) <= radius_px
    return np.where(inside, 100.0, outside)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A film simulated with an ideal detector and with every imperfection (same seed, same specimen)."""
    folder = tmp_path_factory.mktemp("detector")
    paths = {}
    for name, detector in (("ideal", DetectorModel()), ("imperfect", IMPERFECT),
                           ("blurred", DetectorModel(psf_px=1.0))):
        settings = replace(COARSE, family="film", detector=detector)
        paths[name] = simulate_recording(settings, 11, folder / f"{name}.h5", progress=False)
    return {name: open_recording(path) for name, path in paths.items()}


def test_an_ideal_recording_is_measured_as_its_metadata_says(recordings):
    acquisition = recordings["ideal"]
    calibration = calibrate_recording(acquisition)
    assert abs(calibration.radius_error) < 0.01 and not calibration.radius_disagrees
    assert calibration.hot_pixels == 0 and calibration.dead_pixels == 0
    assert calibration.descan_range_px(acquisition.positions_angstrom) < 0.1
    np.testing.assert_allclose(calibration.centre_px, (32.0, 32.0), atol=0.1)


def test_the_radius_edge_descan_hot_pixels_and_background_are_recovered(recordings):
    acquisition = recordings["imperfect"]
    calibration = calibrate_recording(acquisition)
    true_radius = acquisition_nominal_radius_px(acquisition) / (1 + IMPERFECT.semiangle_error)
    assert abs(calibration.radius_px / true_radius - 1) < 0.02
    assert calibration.radius_disagrees  # 3 % off the metadata: reported
    expected = descan_shift_px(IMPERFECT, acquisition.positions_angstrom,
                               (acquisition.positions_angstrom[:, 1].min(), acquisition.positions_angstrom[:, 1].max()))
    measured = calibration.centres_px(acquisition.positions_angstrom) - 32.0
    assert np.abs(measured - expected).max() < 0.2
    defects = DetectorDefects.draw(IMPERFECT, 64, np.random.default_rng([11, 8]), torch.device("cpu"))
    hot = defects.hot.numpy()
    assert calibration.bad_pixels[hot].all() and calibration.hot_pixels == IMPERFECT.hot_pixels
    # on a film the corners hold its highest-angle scattering too: the ideal detector's level plus the dark counts
    scattered = calibrate_recording(recordings["ideal"]).background_per_px
    assert abs(calibration.background_per_px - (scattered + IMPERFECT.dark_counts)) < 0.02


def test_the_edge_width_is_the_point_spread(recordings):
    calibration = calibrate_recording(recordings["blurred"])
    assert abs(calibration.edge_sigma_px - 1.0) < 0.05  # σ = 1 px simulated
    assert calibrate_recording(recordings["ideal"]).edge_sigma_px < 0.3


def test_an_isolated_bright_pixel_is_hot_a_bright_feature_is_not():
    mean = _disc_pattern(14.0, outside=0.2)
    mean[5, 7] += 50.0            # one pixel: hot
    mean[40:43, 50] += 50.0       # a line three pixels long: a feature of the pattern
    mean[0, 20] += 50.0           # on the detector's edge
    mean[32, 35] = 0.0            # inside the disc: dead
    hot, dead = find_bad_pixels(mean, frames=100)
    assert sorted(map(tuple, np.argwhere(hot))) == [(0, 20), (5, 7)]
    assert sorted(map(tuple, np.argwhere(dead))) == [(32, 35)]


def test_dark_field_is_counted_beyond_the_measured_edge_and_blanked_frames_are_no_evidence():
    frames = np.stack([_disc_pattern(12.0), _disc_pattern(12.0, outside=1.0), np.zeros((64, 64))] * 4)
    positions = np.random.default_rng(0).random((12, 2)) * 10
    calibration = calibrate(frames, positions, nominal_radius_px=12.5)
    assert abs(calibration.radius_px - 12.0) < 0.5
    fractions = calibrated_dark_field(frames, positions, calibration)
    assert np.all(fractions[0::3] == calibration.dark_field_floor) and np.all(np.isnan(fractions[2::3]))
    assert calibration.dark_field_floor == 1 / calibration.median_counts  # no background: one count
    outside = (np.hypot(*(np.indices((64, 64)) - 32.0)) > calibration.dark_field_radius_px).sum()
    np.testing.assert_allclose(fractions[1::3], outside / (outside + 100.0 * (frames[0] > 0).sum()), rtol=0.01)


def test_a_beamless_or_empty_batch_is_refused_with_a_message():
    with pytest.raises(ParameterError, match="no counts"):
        calibrate(np.zeros((3, 16, 16)), np.zeros((3, 2)), 4.0)
    with pytest.raises(ParameterError):
        calibrate(np.zeros((0, 16, 16)), np.zeros((0, 2)), 4.0)


def test_a_recording_is_read_in_chunks_to_the_same_fractions(recordings):
    acquisition = recordings["imperfect"]
    calibration = calibrate_recording(acquisition)
    whole = recording_dark_field(acquisition, calibration=calibration)
    np.testing.assert_allclose(recording_dark_field(acquisition, chunk=333, calibration=calibration), whole)


def test_a_meter_settles_on_the_recordings_calibration(recordings):
    """A session meters its own patterns batch by batch; once settled its fractions are the
    whole recording's within a few per cent (the same detector, measured on fewer patterns)."""
    acquisition = recordings["imperfect"]
    order = np.random.default_rng(1).permutation(acquisition.count)[:SETTLE_PATTERNS + 100]
    meter = DarkFieldMeter(acquisition_nominal_radius_px(acquisition))
    for batch in np.array_split(order, 6):
        meter.add(np.stack([acquisition.frames[int(i)] for i in batch]), acquisition.positions_angstrom[batch])
    assert meter.settled and len(meter.fractions) == len(order)
    reference = recording_dark_field(acquisition)[order]
    assert np.nanmedian(np.abs(meter.fractions / reference - 1)) < 0.05


def test_fractions_need_matching_positions():
    meter = DarkFieldMeter(10.0)
    with pytest.raises(ParameterError):
        meter.add(np.ones((3, 16, 16)), np.zeros((2, 2)))
    with pytest.raises(ParameterError):
        DarkFieldMeter(0.0)
    assert len(meter.add(np.ones((0, 16, 16)), np.zeros((0, 2)))) == 0


def test_a_raw_acquisition_can_be_calibrated(rng):
    frames = np.stack([_disc_pattern(5.0, size=16, centre=(8, 8), outside=0.5)] * 10) + rng.random((10, 16, 16))
    acquisition = Acquisition(frames, rng.random((10, 2)), OPTICS, 16, 0.2)
    assert recording_dark_field(acquisition).shape == (10,)


def test_a_meter_waits_through_beamless_batches_and_keeps_no_more_than_it_needs(recordings):
    acquisition = recordings["ideal"]
    meter = DarkFieldMeter(acquisition_nominal_radius_px(acquisition))
    dark = meter.add(np.zeros((5, 64, 64)), np.zeros((5, 2)))
    assert np.isnan(dark).all() and meter.calibration is None and meter.kept == 0
    batch = np.arange(50)
    meter.add(np.stack([acquisition.frames[int(i)] for i in batch]), acquisition.positions_angstrom[batch])
    assert meter.calibration is not None and np.isnan(meter.fractions[:5]).all()
    assert np.isfinite(meter.fractions[5:]).all() and meter.count == 55 and meter.kept == 50
    big = np.arange(50, 50 + 3 * SETTLE_PATTERNS)  # one batch larger than what calibrating needs
    meter.add(np.stack([acquisition.frames[int(i)] for i in big]), acquisition.positions_angstrom[big])
    assert meter.settled and meter.kept == 0 and np.isfinite(meter.fractions[5:]).all()


def test_a_meter_that_never_sees_a_disc_holds_a_bounded_number_of_frames():
    meter = DarkFieldMeter(10.0)
    flat = np.ones((3 * SETTLE_PATTERNS, 16, 16))  # counts, but no disc anywhere
    for batch in np.array_split(np.arange(len(flat)), 6):
        meter.add(flat[batch], np.zeros((len(batch), 2)))
        assert meter.kept <= SETTLE_PATTERNS
    assert meter.count == len(flat)


def test_a_blanked_frame_with_hot_pixels_is_still_blanked():
    """At a low dose a hot pixel's 400 counts exceed a tenth of a frame's: the beam is judged on good pixels."""
    rng = np.random.default_rng(2)
    lit = rng.poisson(_disc_pattern(12.0) * 0.03 + 0.05, size=(40, 64, 64)).astype(float)
    blanked = rng.poisson(0.05, size=(10, 64, 64)).astype(float)
    frames = np.concatenate([lit, blanked])
    frames[:, [3, 40, 60], [7, 50, 2]] += 400.0  # hot pixels, in every frame
    positions = rng.random((50, 2)) * 10
    calibration = calibrate(frames, positions, nominal_radius_px=12.0)
    assert calibration.hot_pixels == 3
    fractions = calibrated_dark_field(frames, positions, calibration)
    assert np.isnan(fractions[40:]).all() and np.isfinite(fractions[:40]).all()
    assert np.median(fractions[:40]) < 0.05  # the hot pixels are not dark field


def test_more_bad_pixels_than_the_detector_has_is_refused():
    with pytest.raises(ParameterError, match="do not fit"):
        DetectorDefects.draw(DetectorModel(hot_pixels=200, dead_pixels=100), 16, np.random.default_rng(0),
                             torch.device("cpu"))
