"""Replaying a large Dectris recording: peak memory and frames per second.

Writes a 10,000-frame 256 × 256 uint16 Dectris recording (1.3 GB of frames before
compression; bitshuffle-LZ4, 1000 frames per data file) into a temporary folder, then,
in a fresh process, opens it lazily and replays every position through the virtual
microscope in sub-sequences of 50 (Halton order, so reads jump between data files),
resampling each batch to the model's 64 px detector. Prints frames per second, the peak
resident memory of the replaying process and whether it stays under 1 GB.

Run with ``make bench-replay`` (or ``python benchmarks/bench_replay.py --keep DIR``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCAN = (100, 100)
DETECTOR_PX = 256
SAMPLING = 0.04759 / 4  # 256 px at Δk/4: the same angular range as the paper's 64 px


def write_recording(folder: Path) -> tuple[Path, float]:
    from scan_server.contracts import Acquisition, ProbeOptics, RasterScan
    from scan_server.io.dectris import write_dectris
    from scan_server.io.frames import FrameView

    class Synthetic(FrameView):
        """Poisson bright-field discs, 32 distinct frames cycled (generation is not the point)."""

        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            k = (np.arange(DETECTOR_PX) - DETECTOR_PX // 2) * SAMPLING
            disc = (np.hypot(k[:, None], k[None, :]) < 0.68).astype(np.float64)
            rate = disc * 2.1e5 / disc.sum() + 0.02
            self.pool = rng.poisson(rate, (32, DETECTOR_PX, DETECTOR_PX)).astype(np.uint16)
            self.shape = (SCAN[0] * SCAN[1], DETECTOR_PX, DETECTOR_PX)
            self.dtype = np.dtype(np.uint16)

        def _read(self, indices: np.ndarray) -> np.ndarray:
            return self.pool[indices % len(self.pool)]

    scan = RasterScan(SCAN, 0.2)
    acquisition = Acquisition(frames=Synthetic(), positions_angstrom=scan.positions_angstrom(),
                              optics=ProbeOptics(60e3, 33.0), detector_px=DETECTOR_PX,
                              detector_sampling_inv_angstrom=SAMPLING, scan=scan, electrons_per_pattern=2.1e5)
    started = time.perf_counter()
    master = write_dectris(folder / "large_master.h5", acquisition, frames_per_file=1000)
    return master, time.perf_counter() - started


def replay(master: str) -> dict:
    """Runs in a fresh process: open lazily, replay every position, report."""
    from scan_server.io.open import open_recording
    from scan_server.io.resample import resample_patterns
    from scan_server.scanning.baselines import HaltonScan
    from scan_server.scanning.state import ScanState
    from scan_server.scanning.virtual_microscope import VirtualMicroscope

    after_imports_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    acquisition = open_recording(master)
    microscope = VirtualMicroscope.over(acquisition)
    strategy = HaltonScan(seed=0)
    acquired = np.empty((0, 2))
    frames_read, checksum = 0, 0.0
    started = time.perf_counter()
    while microscope.remaining:
        count = min(50, microscope.remaining)
        proposal = strategy.next_positions(ScanState(acquired, None, 0), count)
        exposure = microscope.acquire(microscope.to_angstrom(proposal))
        patterns = resample_patterns(exposure.frames, acquisition.detector_sampling_inv_angstrom, 64, 0.04759)
        checksum += float(patterns.sum())
        frames_read += len(exposure.frames)
        acquired = np.concatenate([acquired, microscope.to_unit(exposure.positions_angstrom)])
    seconds = time.perf_counter() - started
    return {"frames": frames_read, "seconds": seconds, "after_imports_mb": after_imports_mb,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "checksum": checksum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the recording here and keep it")
    parser.add_argument("--replay", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        print(json.dumps(replay(args.replay)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_replay_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        master, write_s = write_recording(folder)
        on_disk = sum(p.stat().st_size for p in folder.glob("large_*.h5")) / 1e9
        raw = SCAN[0] * SCAN[1] * DETECTOR_PX**2 * 2 / 1e9
        print(f"wrote {SCAN[0] * SCAN[1]} frames of {DETECTOR_PX}² uint16 ({raw:.2f} GB raw, {on_disk:.2f} GB on disk, "
              f"bitshuffle-LZ4) in {write_s:.1f} s")
        result = subprocess.run([sys.executable, __file__, "--replay", str(master)], capture_output=True, text=True,
                                check=True)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        fps = report["frames"] / report["seconds"]
        print(f"replayed {report['frames']} frames (Halton order, 50 per step, resampled to 64 px) in "
              f"{report['seconds']:.1f} s: {fps:.0f} frames/s")
        print(f"peak resident memory of the replaying process: {report['peak_mb']:.0f} MB "
              f"({report['after_imports_mb']:.0f} MB of it after imports, before opening the file); "
              f"target < 1024 MB: {'met' if report['peak_mb'] < 1024 else 'NOT met'}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
