import h5py
import numpy as np
import pytest

from scan_server.contracts import GroundTruth, ObjectGrid, ProbeOptics, RasterScan
from scan_server.errors import RecordingError
from scan_server.io.canonical import RecordingWriter, read_recording


def _write(path, frames, positions, truth=None, complete=True, **kwargs):
    optics = ProbeOptics(60e3, 33.0, c10_angstrom=-4.5, c30_angstrom=1e3, aberrations={"C12": 2.0, "phi12": 0.3})
    writer = RecordingWriter(path, positions, optics, frames.shape[1], 0.04759, frames.dtype,
                             scan=RasterScan((3, 4), 0.2), electrons_per_pattern=2.1e5,
                             metadata={"seed": 5}, **kwargs)
    writer.write_frames(0, frames[:5])
    writer.write_frames(5, frames[5:])
    if truth is not None:
        writer.write_ground_truth(truth)
    writer.close(complete=complete)
    return optics


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.float32])
def test_round_trip(tmp_path, rng, dtype):
    frames = (rng.random((12, 8, 8)) * 1000).astype(dtype)
    positions = RasterScan((3, 4), 0.2).positions_angstrom()
    truth = GroundTruth(rng.random((20, 21)).astype(np.float32), ObjectGrid((20, 21), 0.164, (-1.5, -2.0)))
    optics = _write(tmp_path / "r.h5", frames, positions, truth)
    acquisition = read_recording(tmp_path / "r.h5")
    np.testing.assert_array_equal(acquisition.frames[:], frames)
    assert acquisition.frames.dtype == dtype
    np.testing.assert_array_equal(acquisition.positions_angstrom, positions)
    assert acquisition.optics == optics
    assert acquisition.scan == RasterScan((3, 4), 0.2)
    assert acquisition.detector_sampling_inv_angstrom == 0.04759
    assert acquisition.electrons_per_pattern == 2.1e5
    assert acquisition.metadata == {"seed": 5}
    np.testing.assert_array_equal(acquisition.ground_truth.phase_rad, truth.phase_rad)
    assert acquisition.ground_truth.grid == truth.grid


def test_unfinished_recording_is_never_mistaken_for_a_complete_one(tmp_path, rng):
    frames = rng.integers(0, 100, (12, 8, 8)).astype(np.uint16)
    _write(tmp_path / "r.h5", frames, RasterScan((3, 4), 0.2).positions_angstrom(), complete=False)
    assert not (tmp_path / "r.h5").exists()
    with pytest.raises(RecordingError, match="incomplete"):
        read_recording(tmp_path / "r.h5.partial")


def test_malformed_files_give_clear_errors(tmp_path, rng):
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(RecordingError, match="not a readable HDF5 file"):
        read_recording(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.zeros((2, 2)))
    with pytest.raises(RecordingError, match="not a scan-server-recording file"):
        read_recording(other)
    frames = rng.integers(0, 100, (12, 8, 8)).astype(np.uint16)
    _write(tmp_path / "ok.h5", frames, RasterScan((3, 4), 0.2).positions_angstrom())
    with h5py.File(tmp_path / "ok.h5", "r+") as f:
        del f["positions_angstrom"]
        f.create_dataset("positions_angstrom", data=np.zeros((11, 2)))
    with pytest.raises(RecordingError, match="12 frames but positions of shape"):
        read_recording(tmp_path / "ok.h5")
    with h5py.File(tmp_path / "ok.h5", "r+") as f:
        del f["positions_angstrom"]
        f.create_dataset("positions_angstrom", data=np.zeros((12, 2)))
        del f["acquisition"].attrs["energy_ev"]
    with pytest.raises(RecordingError, match="missing '/acquisition/energy_ev'"):
        read_recording(tmp_path / "ok.h5")
