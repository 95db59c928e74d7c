import json

import numpy as np
import pytest

from scan_server.errors import ParameterError, RecordingError
from scan_server.io.metadata import (ContradictoryMetadataError, DetectorSampling, FoundMetadata,
                                     Quantities, MissingMetadataError, complete, read_sidecar)
from scan_server.units import detector_sampling_inv_angstrom, electron_wavelength_angstrom

COMPLETE = Quantities(scan_shape=(2, 3), scan_step_angstrom=0.5, energy_ev=60e3, semiangle_mrad=30.0,
                             c10_angstrom=0.0, detector_sampling=DetectorSampling(0.5, "1/nm"))


def _found(**kwargs) -> FoundMetadata:
    return FoundMetadata(format="test", frames=np.zeros((6, 8, 8)), quantities=Quantities(**kwargs))


@pytest.mark.parametrize("value, unit, expected", [
    (0.4759, "1/nm", 0.04759), (0.04759, "1/A", 0.04759), (0.04759, "Å⁻¹", 0.04759),
    (2.316, "mrad", 2.316e-3 / electron_wavelength_angstrom(60e3)),
    (2.316e-3, "rad", 2.316e-3 / electron_wavelength_angstrom(60e3)),
])
def test_detector_sampling_units(value, unit, expected):
    assert detector_sampling_inv_angstrom(value, unit, 60e3) == pytest.approx(expected)


def test_angular_sampling_needs_the_energy_and_unknown_units_are_refused():
    with pytest.raises(ParameterError, match="needs the beam energy"):
        detector_sampling_inv_angstrom(2.0, "mrad", None)
    with pytest.raises(ParameterError, match="unknown detector sampling unit"):
        detector_sampling_inv_angstrom(2.0, "furlongs", 60e3)


def test_missing_quantities_are_all_named_with_their_option():
    with pytest.raises(MissingMetadataError) as error:
        complete(_found(energy_ev=60e3), Quantities(), "x_master.h5")
    message = str(error.value)
    for option in ("--scan-shape NY NX", "--scan-step-angstrom", "--semiangle-mrad", "--c10-angstrom",
                   "--detector-sampling"):
        assert option in message
    assert "--energy-ev" not in message  # the file has it
    assert "x.metadata.json" in message


def test_user_values_complete_the_file_and_positions_follow_the_scan():
    acquisition = complete(_found(energy_ev=60e3), COMPLETE, "x.h5")
    assert acquisition.detector_sampling_inv_angstrom == pytest.approx(0.05)
    np.testing.assert_allclose(acquisition.positions_angstrom[:4], [[0, 0], [0, 0.5], [0, 1.0], [0.5, 0]])


def test_contradictions_are_errors_but_equal_values_in_other_units_are_not():
    with pytest.raises(ContradictoryMetadataError, match="beam energy = 80000.0, but 60000.0"):
        complete(_found(energy_ev=80e3), COMPLETE, "x.h5")
    same = _found(energy_ev=60e3, detector_sampling=DetectorSampling(0.05, "1/A"))
    assert complete(same, COMPLETE, "x.h5").detector_sampling_inv_angstrom == pytest.approx(0.05)
    with pytest.raises(ContradictoryMetadataError, match="scan shape 2 × 2 = 4 positions, but the file holds 6"):
        complete(_found(), Quantities(**{**COMPLETE.__dict__, "scan_shape": (2, 2)}), "x.h5")


def test_sidecar_is_validated(tmp_path):
    good = tmp_path / "a.metadata.json"
    good.write_text(json.dumps({"scan_shape": [2, 3], "detector_sampling": [0.5, "1/nm"], "energy_ev": 6e4}))
    sidecar = read_sidecar(good)
    assert sidecar.scan_shape == (2, 3) and sidecar.detector_sampling == DetectorSampling(0.5, "1/nm")
    bad = tmp_path / "b.metadata.json"
    bad.write_text(json.dumps({"scan_shape": [2, 3], "energy_kev": 60}))
    with pytest.raises(RecordingError, match="energy_kev: Extra inputs are not permitted"):
        read_sidecar(bad)
    bad.write_text("{not json")
    with pytest.raises(RecordingError, match="cannot read the metadata file"):
        read_sidecar(bad)


def test_command_line_overrides_the_sidecar():
    sidecar = Quantities(energy_ev=60e3, semiangle_mrad=20.0)
    given = Quantities(semiangle_mrad=33.0)
    merged = given.merged_over(sidecar)
    assert merged.energy_ev == 60e3 and merged.semiangle_mrad == 33.0
