"""Round trips for every writer/reader pair, files written outside the project, and
third-party readers/writers (rosettasciio's arina reader, emdfile) as cross-checks."""

import json
import zipfile

import h5py
import numpy as np
import pytest

from scan_server.errors import RecordingError
from scan_server.io.dectris import write_dectris
from scan_server.io.metadata import DetectorSampling, Quantities, MissingMetadataError
from scan_server.io.nion import write_nion
from scan_server.io.open import open_recording


def _same_acquisition(read, written):
    np.testing.assert_array_equal(read.frames[:], written.frames)
    np.testing.assert_allclose(read.positions_angstrom, written.positions_angstrom, atol=1e-9)
    assert read.scan == written.scan
    assert read.optics.energy_ev == pytest.approx(written.optics.energy_ev, rel=1e-6)
    assert read.optics.semiangle_mrad == pytest.approx(written.optics.semiangle_mrad)
    assert read.optics.c10_angstrom == pytest.approx(written.optics.c10_angstrom)
    assert read.detector_sampling_inv_angstrom == pytest.approx(written.detector_sampling_inv_angstrom, rel=1e-6)


@pytest.mark.parametrize("suffix", [".h5", ".ndata"])
def test_nion_round_trip(tmp_path, sample_acquisition, suffix):
    path = write_nion(tmp_path / f"item{suffix}", sample_acquisition)
    _same_acquisition(open_recording(path), sample_acquisition)


def test_nion_ndata_is_a_plain_uncompressed_zip(tmp_path, sample_acquisition):
    path = write_nion(tmp_path / "item.ndata", sample_acquisition)
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        properties = json.loads(archive.read("metadata.json"))
    assert properties["collection_dimension_count"] == 2 and properties["data_shape"] == [6, 7, 16, 16]


def test_dectris_round_trip_over_several_data_files_with_a_pixel_mask(tmp_path, sample_acquisition):
    bad = np.zeros((16, 16), dtype=bool)
    bad[3, 4] = bad[10, 0] = True
    master = write_dectris(tmp_path / "scan_master.h5", sample_acquisition, frames_per_file=10, bad_pixels=bad)
    assert sorted(p.name for p in tmp_path.glob("scan_data_*.h5")) == [f"scan_data_00000{k}.h5" for k in range(1, 6)]
    with h5py.File(tmp_path / "scan_data_000001.h5") as f:
        assert f["/entry/data/data"].id.get_create_plist().get_filter(0)[0] == 32008  # bitshuffle
        assert f["/entry/data/data"][0][3, 4] == 65535  # the detector's value in a masked pixel
    read = open_recording(master)  # the sidecar beside the master supplies scan shape and optics
    expected = np.asarray(sample_acquisition.frames).copy()
    expected[:, bad] = 0
    np.testing.assert_array_equal(read.frames[:], expected)
    assert read.scan == sample_acquisition.scan
    assert read.detector_sampling_inv_angstrom == pytest.approx(0.06, rel=1e-9)


def test_dectris_without_scan_shape_is_refused_not_guessed(tmp_path, sample_acquisition):
    master = write_dectris(tmp_path / "scan_master.h5", sample_acquisition)
    (tmp_path / "scan.metadata.json").unlink()
    with pytest.raises(MissingMetadataError, match=r"scan shape \(--scan-shape NY NX\)"):
        open_recording(master)
    given = Quantities(scan_shape=(6, 7), scan_step_angstrom=0.25, semiangle_mrad=25.0, c10_angstrom=-12.0)
    assert open_recording(master, given).count == 42
    with pytest.raises(RecordingError, match="42 frames"):
        open_recording(master, Quantities(**{**given.__dict__, "scan_shape": (7, 7)}))


def test_dectris_missing_data_file_is_named(tmp_path, sample_acquisition):
    master = write_dectris(tmp_path / "scan_master.h5", sample_acquisition, frames_per_file=20)
    (tmp_path / "scan_data_000002.h5").unlink()
    with pytest.raises(RecordingError, match="scan_data_000002.h5 .* is missing"):
        open_recording(master)


def test_rosettasciio_arina_reads_our_dectris_files(tmp_path, sample_acquisition):
    rsciio_arina = pytest.importorskip("rsciio.arina")
    master = write_dectris(tmp_path / "scan_master.h5", sample_acquisition, frames_per_file=16)
    signal = rsciio_arina.file_reader(str(master), navigation_shape=(7, 6))[0]
    frames = np.asarray(signal["data"]).reshape(42, 16, 16)
    np.testing.assert_array_equal(frames, np.asarray(sample_acquisition.frames))


def test_emd_datacube_written_by_emdfile(tmp_path):
    emdfile = pytest.importorskip("emdfile")
    # emdfile's linear dims are the first two samples of the axis (start, start + step)
    data = np.random.default_rng(2).integers(0, 500, (5, 4, 12, 12)).astype(np.uint16)
    cube = emdfile.Array(data=data, name="datacube", units="counts",
                         dims=[np.array([0, 0.3]), np.array([0, 0.3]), np.array([-0.3, -0.25]), np.array([-0.3, -0.25])],
                         dim_units=["A", "A", "A^-1", "A^-1"], dim_names=["Rx", "Ry", "Qx", "Qy"])
    root = emdfile.Root(name="root")
    root.tree(cube)
    emdfile.save(str(tmp_path / "cube.emd"), root, mode="o")
    given = Quantities(energy_ev=200e3, semiangle_mrad=20.0, c10_angstrom=0.0)
    read = open_recording(tmp_path / "cube.emd", given)
    np.testing.assert_array_equal(read.frames[:], data.reshape(20, 12, 12))
    assert read.scan.shape == (5, 4) and read.scan.step_angstrom == pytest.approx(0.3)
    assert read.detector_sampling_inv_angstrom == pytest.approx(0.05)
    with pytest.raises(MissingMetadataError, match="beam energy"):
        open_recording(tmp_path / "cube.emd")


def test_nion_file_written_outside_the_project(data_dir):
    """abTEM simulation written by an independent script (tests/data/README.md)."""
    truth = json.loads((data_dir / "mos2_abtem_20x20.simulation.json").read_text())
    read = open_recording(data_dir / "mos2_abtem_20x20.h5")
    assert read.frames.shape == (400, 64, 64)
    assert read.scan.shape == (20, 20) and read.scan.step_angstrom == pytest.approx(0.2)
    assert read.optics.energy_ev == 60e3 and read.optics.semiangle_mrad == pytest.approx(33.0)
    assert read.optics.c10_angstrom == pytest.approx(truth["c10_angstrom"])
    assert read.detector_sampling_inv_angstrom == pytest.approx(0.04759)
    counts = np.asarray(read.frames[:]).sum(axis=(1, 2)).mean()
    assert counts == pytest.approx(truth["electrons_per_pattern"] * truth["pattern_sum_mean"], rel=0.01)


def test_dectris_files_written_outside_the_project_match_the_nion_ones(data_dir):
    with pytest.raises(MissingMetadataError, match="scan shape"):
        open_recording(data_dir / "mos2_abtem_20x20_master.h5")
    nion = open_recording(data_dir / "mos2_abtem_20x20.h5")
    given = Quantities(scan_shape=(20, 20), scan_step_angstrom=0.2, semiangle_mrad=33.0,
                              c10_angstrom=nion.optics.c10_angstrom,
                              detector_sampling=DetectorSampling(0.4759, "1/nm"))
    dectris = open_recording(data_dir / "mos2_abtem_20x20_master.h5", given)
    np.testing.assert_array_equal(dectris.frames[:], nion.frames[:])
    assert dectris.optics.energy_ev == pytest.approx(60e3, rel=1e-4)  # from incident_wavelength 0.04866 Å


def test_unknown_files_are_refused(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(RecordingError, match="not a recording this program knows"):
        open_recording(tmp_path / "x.h5")
    (tmp_path / "y.ndata").write_bytes(b"not a zip")
    with pytest.raises(RecordingError, match="not a readable Nion Swift .ndata"):
        open_recording(tmp_path / "y.ndata")
