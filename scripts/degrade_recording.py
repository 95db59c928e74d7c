"""Copy recordings (canonical format, with their truth) as a real detector would have written them:
every frame blurred by a Gaussian point-spread of σ px, the disc drifting with the scan (descan),
a per-pixel gain, hot pixels, Poisson dark counts added, and the metadata's detector sampling
(and/or semi-angle) a fraction off. For recordings we did not
simulate ourselves (the abTEM validation set), where the detector cannot be put inside the
simulation (``scan-server simulate --detector-psf-px …`` does that for ours).

The blur acts on the recorded counts (an integrating detector's blur of the noise, unlike
``simulate``'s, which blurs the expected intensity before the counts); the result is
rounded to counts again. The truth and the positions are copied unchanged; the copy's
metadata records what was done (``degraded``). Never overwrites: an existing output is skipped.

    .venv/bin/python scripts/degrade_recording.py data/abtem-validation/*.h5 --out data/abtem-validation-real \
        --psf-px 1.0 --dark-counts 0.05 --sampling-error 0.03
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from scan_server.io.canonical import RecordingWriter, read_recording
from scan_server.physics.detector import (
    DetectorDefects,
    DetectorModel,
    descan_shift_px,
    gaussian_blur,
    shift_patterns,
)

CHUNK = 500


def degrade(source: Path, target: Path, psf_px: float, dark_counts: float, sampling_error: float,
            semiangle_error: float, seed: int, descan_px: float = 0.0, gain_spread: float = 0.0,
            hot_pixels: int = 0, hot_pixel_counts: float = 50.0) -> None:
    acquisition = read_recording(source)
    generator = torch.Generator().manual_seed(seed)
    optics = replace(acquisition.optics, semiangle_mrad=acquisition.optics.semiangle_mrad * (1 + semiangle_error))
    record = {"psf_px": psf_px, "dark_counts": dark_counts, "sampling_error": sampling_error,
              "semiangle_error": semiangle_error, "descan_px": descan_px, "gain_spread": gain_spread,
              "hot_pixels": hot_pixels, "hot_pixel_counts": hot_pixel_counts, "source": source.name, "seed": seed}
    model = DetectorModel(descan_px=descan_px, gain_spread=gain_spread, hot_pixels=hot_pixels)
    defects = DetectorDefects.draw(model, acquisition.detector_px, np.random.default_rng(seed), torch.device("cpu"))
    x = acquisition.positions_angstrom[:, 1]
    field_x = (float(x.min()), float(x.max()))
    metadata = {**acquisition.metadata, "degraded": record}
    sampling = acquisition.detector_sampling_inv_angstrom * (1 + sampling_error)
    with RecordingWriter(target, acquisition.positions_angstrom, optics, acquisition.detector_px, sampling,
                         np.dtype(np.uint32), scan=acquisition.scan,
                         electrons_per_pattern=acquisition.electrons_per_pattern, metadata=metadata) as writer:
        for start in tqdm(range(0, acquisition.count, CHUNK), desc=f"degrade {source.name}", leave=False):
            frames = torch.as_tensor(np.asarray(acquisition.frames[start:start + CHUNK], dtype=np.float64))
            if descan_px > 0:
                positions = acquisition.positions_angstrom[start:start + CHUNK]
                frames = shift_patterns(frames, torch.as_tensor(descan_shift_px(model, positions, field_x)))
            blurred = gaussian_blur(frames, psf_px) * defects.gain
            counts = torch.round(blurred) + torch.poisson(torch.full_like(blurred, dark_counts), generator=generator)
            counts = counts + torch.poisson((defects.hot * hot_pixel_counts).expand_as(counts).contiguous(),
                                            generator=generator)
            writer.write_frames(start, counts.numpy())
        if acquisition.ground_truth is not None:
            writer.write_ground_truth(acquisition.ground_truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--psf-px", type=float, default=1.0)
    parser.add_argument("--dark-counts", type=float, default=0.05)
    parser.add_argument("--sampling-error", type=float, default=0.03)
    parser.add_argument("--semiangle-error", type=float, default=0.0)
    parser.add_argument("--descan-px", type=float, default=0.0, help="the disc drifts this far across the scan (in x)")
    parser.add_argument("--gain-spread", type=float, default=0.0, help="per-pixel gain, relative σ")
    parser.add_argument("--hot-pixels", type=int, default=0)
    parser.add_argument("--hot-pixel-counts", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, source in enumerate(args.recordings):
        target = args.out / source.name
        if target.exists():
            print(f"{target}: exists, skipped")
            continue
        degrade(source, target, args.psf_px, args.dark_counts, args.sampling_error, args.semiangle_error,
                args.seed + i, args.descan_px, args.gain_spread, args.hot_pixels, args.hot_pixel_counts)
        print(f"{target}: written")


if __name__ == "__main__":
    main()
