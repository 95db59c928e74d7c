"""The service's warm-started, batched decisions against the previous release's from-scratch
ones, on the same recording and positions: the first decision that looks is the same, the
later ones agree to within a small fraction of the probe step (the GRU sees reconstructions
that differ by the warm start's extra passes), and sessions run at once decide as they do alone."""

from __future__ import annotations

import threading

import numpy as np
from service_helpers import Server, Wire, run_session


def _decisions(tmp_path, models_dir, recording, name: str, **settings: str) -> list[np.ndarray]:
    server = Server(tmp_path / name, models_dir, env={f"SCAN_SERVER_{k.upper()}": v for k, v in settings.items()})
    server.start()
    wire = Wire(server.endpoint)
    try:
        _, replies, _ = run_session(server, wire, recording, strategy="adaptive", total=50, subsequence=10)
    finally:
        wire.close()
        server.stop()
    return [np.asarray(r["positions_angstrom"]).reshape(-1, 2) for r in replies[:-1]]


def test_warm_decisions_agree_with_from_scratch_ones(tmp_path, models_dir, recording):
    scratch = _decisions(tmp_path, models_dir, recording, "scratch", reconstruction="scratch")
    warm = _decisions(tmp_path, models_dir, recording, "warm", reconstruction="warm")
    np.testing.assert_allclose(warm[0], scratch[0], atol=1e-5)          # the first step is from scratch
    step_angstrom = float(np.median(np.diff(np.unique(recording.positions_angstrom[:, 1]))))
    for w, s in zip(warm[1:], scratch[1:]):
        assert np.abs(w - s).max() < 0.1 * step_angstrom


def test_sessions_deciding_together_decide_as_alone(tmp_path, models_dir, recording):
    server = Server(tmp_path / "together", models_dir, env={"SCAN_SERVER_BATCH_WINDOW_MS": "50"}).start()
    try:
        wire = Wire(server.endpoint)
        _, alone, _ = run_session(server, wire, recording, strategy="adaptive", total=50, subsequence=10)
        wire.close()
        results: list = [None] * 3

        def play(i: int) -> None:
            w = Wire(server.endpoint)
            try:
                results[i] = run_session(server, w, recording, strategy="adaptive", total=50, subsequence=10)[1]
            finally:
                w.close()

        threads = [threading.Thread(target=play, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for replies in results:
            for reply, reference in zip(replies, alone):
                np.testing.assert_allclose(reply["positions_angstrom"], reference["positions_angstrom"], atol=1e-4)
    finally:
        server.stop()
