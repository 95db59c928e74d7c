"""The reconstruction corrected for the detector: the aperture, point-spread, descan, background,
bad pixels and blanked frames measured from the patterns (``physics.detector_correction``)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from scan_server.evaluation.metrics import pearson, resample_to_grid
from scan_server.evaluation.scores import material_mask
from scan_server.io.open import open_recording
from scan_server.physics.detector import DetectorModel
from scan_server.physics.detector_correction import tilt
from scan_server.physics.forward import in_fft_order
from scan_server.physics.detector_signals import recording_correction
from scan_server.physics.incremental import IncrementalReconstruction, WarmStartSettings, advance
from scan_server.physics.probe import probe_fourier
from scan_server.physics.reconstruct import (RopSettings, _chunk_loss_and_gradient,
                                             _chunk_loss_and_gradient_autograd, prepare_batch,
                                             reconstruct, reconstruct_acquisition, reconstruction_geometry)
from scan_server.contracts import ObjectGrid
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.scanning.acquire import select_positions

#: a 20 Å edge at a coarse step, 2,500 patterns
COARSE = preset("paper", scan_shape=(50, 50), scan_step_angstrom=0.4)
#: the six everyday imperfections of the real-detectors issue, all at once
ALL_SIX = DetectorModel(psf_px=0.8, descan_px=1.3, descan_angle_deg=20.0, semiangle_error=0.03,
                        gain_spread=0.05, dark_counts=0.05, hot_pixels=5)
POSITIONS, ITERATIONS = 400, 20


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrected")
    return {name: open_recording(simulate_recording(replace(COARSE, family="edge", detector=detector), 21,
                                                    folder / f"{name}.h5", progress=False))
            for name, detector in (("ideal", DetectorModel()), ("imperfect", ALL_SIX))}


@pytest.fixture(scope="module")
def ideal_r(edges) -> float:
    """The corrected Halton reconstruction's r with the truth on the ideal detector."""
    return _r_with_truth(edges["ideal"], corrected=True)


def _aperture_pixels(acquisition, semiangle_mrad: float) -> int:
    geometry = reconstruction_geometry(acquisition)
    optics = replace(acquisition.optics, semiangle_mrad=semiangle_mrad)
    return int((probe_fourier(optics, geometry.window_px, geometry.pixel_size_angstrom).abs() > 0).sum())


def _r_with_truth(acquisition, corrected: bool) -> float:
    indices = select_positions("halton", POSITIONS, acquisition.positions_angstrom, 0, acquisition.scan.shape)
    geometry = reconstruction_geometry(acquisition)
    correction = recording_correction(acquisition, geometry) if corrected else None
    result = reconstruct_acquisition(acquisition, indices, RopSettings(iterations=ITERATIONS), geometry,
                                     correction=correction)
    region = result.grid.scan_region(acquisition.positions_angstrom)
    truth = resample_to_grid(acquisition.ground_truth, result.grid)[region]
    mask = material_mask(truth, result.grid.pixel_size_angstrom)
    return pearson(result.potential.real[region][mask], truth[mask])


def test_an_ideal_detector_keeps_the_metadatas_aperture_and_no_blur(edges):
    acquisition = edges["ideal"]
    correction = recording_correction(acquisition, reconstruction_geometry(acquisition))
    assert _aperture_pixels(acquisition, correction.semiangle_mrad) == \
        _aperture_pixels(acquisition, acquisition.optics.semiangle_mrad)
    assert correction.psf_px == 0.0
    assert np.abs(correction.descan_px(acquisition.positions_angstrom)).max() < 0.1


def test_the_true_aperture_and_point_spread_are_found(edges):
    acquisition = edges["imperfect"]
    correction = recording_correction(acquisition, reconstruction_geometry(acquisition))
    true_semiangle = acquisition.optics.semiangle_mrad / (1 + ALL_SIX.semiangle_error)
    assert abs(_aperture_pixels(acquisition, correction.semiangle_mrad) / _aperture_pixels(acquisition, true_semiangle)
               - 1) < 0.02  # the same pixels, but for at most part of one ring
    assert abs(correction.psf_px - ALL_SIX.psf_px) < 0.15
    assert correction.calibration.hot_pixels == ALL_SIX.hot_pixels


def test_with_corrections_the_imperfect_detector_reconstructs_as_well_as_the_ideal_one(edges, ideal_r):
    ideal = ideal_r
    assert _r_with_truth(edges["imperfect"], corrected=True) >= 0.95 * ideal
    assert _r_with_truth(edges["imperfect"], corrected=False) < 0.95 * ideal  # so the check above can fail


@pytest.mark.slow
@pytest.mark.parametrize("detector", [DetectorModel(psf_px=0.8), DetectorModel(descan_px=1.3, descan_angle_deg=20.0),
                                      DetectorModel(semiangle_error=0.03),
                                      DetectorModel(hot_pixels=5, dark_counts=0.05, gain_spread=0.05)],
                         ids=["point-spread", "descan", "semi-angle", "hot-dark-gain"])
def test_each_imperfection_alone_is_corrected(ideal_r, tmp_path, detector):
    acquisition = open_recording(simulate_recording(replace(COARSE, family="edge", detector=detector), 21,
                                                    tmp_path / "one.h5", progress=False))
    assert _r_with_truth(acquisition, corrected=True) >= 0.95 * ideal_r


def test_the_blurred_models_written_out_gradient_is_autograds(rng, small_geometry, optics):
    n, size = 5, small_geometry.window_px
    probes = torch.as_tensor(rng.standard_normal((n, size, size)) + 1j * rng.standard_normal((n, size, size)))
    windows = torch.exp(1j * torch.as_tensor(rng.uniform(-0.3, 0.3, (n, size, size))))
    patterns = torch.as_tensor(rng.uniform(0, 1, (n, size, size)))
    psf = torch.full((n,), 0.9, dtype=torch.float64)
    measured, seen = in_fft_order(patterns, size)
    loss, gradient = _chunk_loss_and_gradient(probes, windows, measured, seen, psf)
    reference_loss, reference = _chunk_loss_and_gradient_autograd(probes, windows, patterns, small_geometry, psf)
    np.testing.assert_allclose(loss.numpy(), reference_loss.numpy(), rtol=1e-9)
    np.testing.assert_allclose(gradient.numpy(), reference.numpy(), rtol=1e-7, atol=1e-9 * float(reference.abs().max()))


@pytest.mark.parametrize("upsample", [1, 2])
def test_a_tilt_moves_the_far_field_by_the_descan(small_geometry, optics, upsample):
    from scan_server.physics.forward import detector_intensity
    from scan_server.physics.probe import probe_real
    geometry = replace(small_geometry, upsample=upsample)   # a detector pixel is `upsample` far-field pixels
    probe = probe_real(optics, geometry)[None]
    shifted = detector_intensity(probe * tilt(torch.tensor([[2.0, -3.0]]), torch.tensor([True]), geometry,
                                              probe.dtype), geometry)
    np.testing.assert_allclose(shifted[0].numpy(), torch.roll(detector_intensity(probe, geometry)[0],
                                                              (2, -3), (0, 1)).numpy(), atol=1e-12)
    blanked = tilt(torch.zeros((1, 2)), torch.tensor([False]), geometry, probe.dtype)
    assert float(blanked.abs().max()) == 0.0


def test_a_data_set_whose_frames_are_all_blanked_reconstructs_to_zero(edges):
    acquisition = edges["ideal"]
    geometry = reconstruction_geometry(acquisition)
    correction = recording_correction(acquisition, geometry)
    indices = np.arange(0, 200)
    frames = np.asarray(acquisition.frames[indices]) * 0 + np.float32(correction.calibration.background_per_px)
    grid = ObjectGrid.covering(acquisition.positions_angstrom, geometry)
    batch = prepare_batch([frames], [acquisition.positions_angstrom[indices]], [acquisition.optics], grid, geometry,
                          corrections=[correction])
    assert not bool(batch.lit.any())
    estimate = reconstruct(batch, RopSettings(iterations=3))
    assert bool(torch.isfinite(estimate).all()) and float(estimate.abs().max()) == 0.0


def test_the_warm_start_corrects_as_the_batch_reconstruction_does(edges):
    acquisition = edges["imperfect"]
    geometry = reconstruction_geometry(acquisition)
    correction = recording_correction(acquisition, geometry)
    indices = np.arange(0, acquisition.count, 25)
    frames, positions = np.asarray(acquisition.frames[indices]), acquisition.positions_angstrom[indices]
    grid = ObjectGrid.covering(acquisition.positions_angstrom, geometry)
    batch = reconstruct(prepare_batch([frames], [positions], [acquisition.optics], grid, geometry,
                                      corrections=[correction]), RopSettings(iterations=3))[0]
    warm = IncrementalReconstruction(acquisition.optics, grid, geometry, torch.device("cpu"),
                                     WarmStartSettings(first_iterations=3))
    warm.add(frames[:40], positions[:40])
    warm.set_correction(correction)      # corrections made known after some patterns: what was kept is made again
    warm.add(frames[40:], positions[40:])
    np.testing.assert_allclose(advance([warm])[0].numpy(), batch.numpy(), rtol=1e-4, atol=1e-5)
