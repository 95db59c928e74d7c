"""Command line: ``scan-server inspect | simulate | reconstruct | train | evaluate | export | serve``.

Errors caused by input print one line (``error: …``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .errors import ParameterError, ScanServerError
from .evaluation import DEFAULT_FINAL_ITERATIONS
from .policy import DEFAULT_MODEL
from .scanning.registry import BASELINE_STRATEGIES, EVALUATED_STRATEGIES, HALTON
from .training.settings import BASELINES, REWARDS, SAMPLINGS

if TYPE_CHECKING:
    from .contracts import Acquisition
    from .io.metadata import Quantities
    from .physics.simulate import SimulationSettings


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def add_metadata_options(parser: argparse.ArgumentParser) -> None:
    """Options that supply what a recording lacks (also accepted in a sidecar JSON file)."""
    group = parser.add_argument_group("metadata the file may lack (or put them in NAME.metadata.json)")
    group.add_argument("--scan-shape", type=_positive_int, nargs=2, metavar=("NY", "NX"))
    group.add_argument("--scan-step-angstrom", type=float, metavar="STEP")
    group.add_argument("--energy-ev", type=float, metavar="E")
    group.add_argument("--semiangle-mrad", type=float, metavar="ALPHA")
    group.add_argument("--c10-angstrom", type=float, metavar="C10", help="C10 = −defocus")
    group.add_argument("--c30-angstrom", type=float, metavar="CS")
    group.add_argument("--detector-sampling", nargs=2, metavar=("VALUE", "UNIT"),
                       help="one detector pixel, in 1/nm, 1/A, mrad or rad")
    group.add_argument("--electrons-per-pattern", type=float, metavar="N")
    group.add_argument("--metadata", type=Path, metavar="FILE", help="sidecar JSON with the same names")


def metadata_overrides(args: argparse.Namespace) -> Quantities:
    from .io.metadata import DetectorSampling, Quantities

    sampling = None
    if args.detector_sampling:
        try:
            sampling = DetectorSampling(float(args.detector_sampling[0]), args.detector_sampling[1])
        except ValueError:
            raise ParameterError(f"--detector-sampling takes a number and a unit, got "
                                 f"{' '.join(args.detector_sampling)}") from None
    return Quantities(
        scan_shape=tuple(args.scan_shape) if args.scan_shape else None, scan_step_angstrom=args.scan_step_angstrom,
        energy_ev=args.energy_ev, semiangle_mrad=args.semiangle_mrad, c10_angstrom=args.c10_angstrom,
        c30_angstrom=args.c30_angstrom, detector_sampling=sampling, electrons_per_pattern=args.electrons_per_pattern)


def open_from_args(args: argparse.Namespace) -> Acquisition:
    from .io.open import open_recording

    return open_recording(args.recording, metadata_overrides(args), args.metadata)


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("inspect", help="show what a recording holds and what is missing",
                            description="Read a recording (canonical, Nion Swift .h5/.ndata, Dectris master, EMD) "
                                        "and print its shape and metadata with units, and what is missing.")
    p.add_argument("recording", type=Path)
    add_metadata_options(p)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    from .physics.families import MIXED, SPECIMEN_FAMILIES

    p = commands.add_parser("simulate", help="simulate full raster recordings with ground truth",
                            description="Simulate recordings of a randomised MoS2 monolayer (or your own "
                                        "structure), whole or shaped into a specimen family, in the canonical "
                                        "HDF5 format, one file per seed. Families: docs/physics.md.")
    p.add_argument("--preset", default="paper", help="paper (100×100 positions) or small (32×32)")
    p.add_argument("--specimen", default="film", choices=(*SPECIMEN_FAMILIES, MIXED),
                   help="specimen family (default: film); mixed: the families in turn by seed (seed mod 6)")
    p.add_argument("--count", type=_positive_int, default=1, help="number of recordings")
    p.add_argument("--seed", type=int, default=0, help="seed of the first recording (then seed+1, …)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--scan-shape", type=_positive_int, nargs=2, metavar=("NY", "NX"))
    p.add_argument("--electrons-per-pattern", type=float, help="dose per pattern (default: preset, 2.1e5)")
    p.add_argument("--dose", type=float, metavar="E_PER_A2",
                   help="dose of the full scan in e⁻/Å² (alternative to --electrons-per-pattern)")
    p.add_argument("--noise-free", action="store_true", help="store expected counts, no Poisson noise")
    p.add_argument("--upsample", type=_positive_int, help="far-field upsampling factor, binned to the detector")
    p.add_argument("--structure", type=Path, help="structure file (any format ASE reads) instead of MoS2")
    p.add_argument("--carbon-thickness", type=float, metavar="ANGSTROM", help="amorphous carbon film")
    p.add_argument("--format", default="canonical", choices=("canonical", "nion", "dectris"),
                   help="file format (the ground truth is kept in the canonical format only)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    _add_detector_options(p)


#: simulate's detector options → ``physics.detector.DetectorModel`` fields
DETECTOR_OPTIONS = {"detector_psf_px": "psf_px", "descan_px": "descan_px", "descan_angle_deg": "descan_angle_deg",
                    "semiangle_error": "semiangle_error", "sampling_error": "sampling_error",
                    "gain_spread": "gain_spread", "dark_counts": "dark_counts", "hot_pixels": "hot_pixels",
                    "hot_pixel_counts": "hot_pixel_counts", "dead_pixels": "dead_pixels",
                    "blanked_fraction": "blanked_fraction"}


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("a real detector (docs/physics.md; default: ideal)")
    group.add_argument("--detector-psf-px", type=float, metavar="SIGMA", help="Gaussian point-spread σ, pixels")
    group.add_argument("--descan-px", type=float, metavar="PX", help="the disc drifts this far across the scan")
    group.add_argument("--descan-angle-deg", type=float, metavar="DEG", help="its direction on the detector")
    group.add_argument("--semiangle-error", type=float, metavar="FRACTION",
                       help="the metadata's semi-angle is the true one × (1 + FRACTION)")
    group.add_argument("--sampling-error", type=float, metavar="FRACTION",
                       help="the metadata's detector sampling is the true one × (1 + FRACTION)")
    group.add_argument("--gain-spread", type=float, metavar="FRACTION", help="per-pixel gain spread (rms)")
    group.add_argument("--dark-counts", type=float, metavar="N", help="dark counts per pixel per frame (Poisson)")
    group.add_argument("--hot-pixels", type=int, metavar="N", help="number of hot pixels")
    group.add_argument("--hot-pixel-counts", type=float, metavar="N", help="counts a hot pixel adds per frame (400)")
    group.add_argument("--dead-pixels", type=int, metavar="N", help="number of dead pixels")
    group.add_argument("--blanked-fraction", type=float, metavar="FRACTION", help="frames taken with the beam blanked")
    group.add_argument("--randomise-detector", action="store_true",
                       help="draw every recording's detector and dose from the training ranges "
                            "(physics.detector.DetectorRanges) instead")


def _add_reconstruct(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("reconstruct", help="reconstruct a recording from all or N positions (ROP)",
                            description="Gradient-descent reconstruction (ROP) of a recording from all of its "
                                        "patterns or N of them chosen by a baseline scan strategy.")
    p.add_argument("recording", type=Path)
    p.add_argument("--positions", default="all", help="'all' or a number N of positions")
    p.add_argument("--strategy", default=HALTON, choices=BASELINE_STRATEGIES, help="the scan of N positions")
    p.add_argument("--iterations", type=int, help="gradient steps (default 5; --converged: many)")
    p.add_argument("--converged", action="store_true", help="many iterations, for a full-data ground truth")
    p.add_argument("--step-size", type=float, help="gradient step α (see docs/physics.md)")
    p.add_argument("--oversample", type=_positive_int, default=1,
                   help="reconstruction pixel this many times finer than the detector's Nyquist pixel")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True, help="output path; writes OUT.npy and OUT.png")
    p.add_argument("--no-detector-correction", action="store_true",
                   help="take the metadata's semi-angle and an ideal detector (no descan, point-spread, "
                        "background or bad-pixel corrections measured from the patterns; docs/physics.md)")
    add_metadata_options(p)


def _add_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train: cae, pretrain, rl (the GRU policy); value-map; imitate (the GRU "
                                          "learns from the value map)",
                            description="One training stage into a run folder (stages chain). Scales out with "
                                        "`torchrun --nproc_per_node N -m scan_server.cli train …`.")
    p.add_argument("stage", choices=("cae", "pretrain", "rl", "value-map", "imitate"))
    p.add_argument("--preset", default="cpu", help="cpu or paper (model size and defaults)")
    p.add_argument("--data", type=Path, required=True, help="folder of training recordings (any format)")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, curves, model)")
    p.add_argument("--iterations", type=int)
    p.add_argument("--batch", type=int, help="episodes per step and process")
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int, help="sub-sequences per episode (5 → 250 positions)")
    p.add_argument("--subsequence", type=_positive_int,
                   help="positions per step (default: the preset's 50); on a trained run, pretrain starts a "
                        "new policy of this size on its autoencoder (one model per Table I row)")
    p.add_argument("--reward", choices=REWARDS,
                   help="rl: per position voronoi (paper), shared, error; per sub-sequence quality (the headline "
                        "score's gain, needs simulated recordings)")
    p.add_argument("--baseline", choices=BASELINES,
                   help="rl: none (paper), batch (batch mean), halton (the Halton scan on the same specimen; "
                        "with --reward quality), specimen (the other episodes on the same specimen)")
    p.add_argument("--episodes-per-specimen", type=int,
                   help="rl: play each sampled specimen this many times per step (the specimen baseline: ≥ 2)")
    p.add_argument("--normalise", action="store_true", default=None,
                   help="rl: divide the advantages by their standard deviation over the batch")
    p.add_argument("--sampling", choices=SAMPLINGS,
                   help="rl: path (whole sampled episodes) or vine (branches from the means' state at one "
                        "sub-sequence, credited with its gain; --reward quality --baseline specimen)")
    p.add_argument("--mirrored", action="store_true", default=None,
                   help="rl: pairs of episodes on a specimen take opposite deviations (ε, −ε)")
    p.add_argument("--score-iterations", type=_positive_int,
                   help="rl with vine sampling: ROP iterations from scratch of the reconstructions the reward "
                        "scores (default: the in-loop ones, 5); e.g. 30 scores the converged reconstruction")
    p.add_argument("--sigma", type=float, help="σ of the Gaussian policy (normalised units)")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--snapshots", action="store_true", default=None,
                   help="also keep each checkpoint's model weights in OUT/snapshots/ (scripts/policy_curve.py)")
    p.add_argument("--device", default="auto")


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                            help="dose–quality curves: adaptive against random, Halton, sparse raster "
                                             "and the oracle-material reference",
                            description="Score every strategy at every count of --positions against the full-data "
                                        "reconstruction (whole field and material) and the true phase when the "
                                        "recording has one; dose ratios against Halton; write report.json, "
                                        "report.md, figures and the positions visited. See docs/evaluation.md.")
    p.add_argument("--model", type=Path, help="model folder (models/NAME or a run folder); omit for baselines only")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="recordings (any supported format)")
    p.add_argument("--positions", type=_positive_int, nargs="+", default=[250], metavar="N",
                   help="position counts of the curves, e.g. 60 100 150 200 250 350 (default: 250)")
    p.add_argument("--reference-positions", type=_positive_int, metavar="N",
                   help="the count at which Halton's score is the dose ratios' target (default 250; one of "
                        "--positions)")
    p.add_argument("--subsequences", type=_positive_int,
                   help="the adaptive policy: check that its model reaches the largest count in this many steps "
                        "(its step size is its model's); without adaptive: the value map takes the largest count "
                        "in this many equal steps (Table I's rows; default: steps of the model's size, 50)")
    p.add_argument("--final-iterations", type=_positive_int, default=DEFAULT_FINAL_ITERATIONS,
                   help="ROP iterations of every final reconstruction (30: converged; 5: the paper's protocol)")
    p.add_argument("--seed", type=int, default=0, help="seed of the baseline scans (recording i uses seed + i)")
    p.add_argument("--same-seed", action="store_true",
                   help="every recording uses --seed itself; with --seed 0 the baselines start with the adaptive "
                        "policy's own Halton points (its model's seed), so it is compared paired")
    p.add_argument("--strategies", nargs="+", choices=EVALUATED_STRATEGIES, metavar="NAME",
                   help="only these (default: every one the model allows, the baselines and the references; "
                        "dose ratios need halton)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ground-truth-cache", type=Path, metavar="DIR",
                   help="keep each recording's full-data reconstruction here and reuse it in later evaluations")
    add_metadata_options(p)


def _add_export(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="install a trained run as models/NAME")
    p.add_argument("run", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: ./models)")
    p.add_argument("--evaluation", type=Path, nargs="+", metavar="REPORT_JSON",
                   help="record each evaluation's figures in the card")
    p.add_argument("--replace", action="store_true", help="overwrite an installed model of the same name")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run the scan service (HTTP control plane + ZeroMQ data plane)",
                            description="Settings come from SCAN_SERVER_* environment variables and an optional "
                                        "TOML/JSON file; options here override both. The token is read from "
                                        "SCAN_SERVER_TOKEN or the file only (never the command line). "
                                        "See docs/service.md.")
    p.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--zmq-port", type=int, help="ZeroMQ port (default 5555)")
    p.add_argument("--model", help=f"model name in models/ or a folder ('' for none; default {DEFAULT_MODEL})")
    p.add_argument("--data-dir", type=Path, help="session recordings and index (default ./sessions)")
    p.add_argument("--device", help="auto, cpu or cuda[:N]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scan-server", description="Adaptive scanning for electron ptychography.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_inspect(commands)
    _add_simulate(commands)
    _add_reconstruct(commands)
    _add_train(commands)
    _add_evaluate(commands)
    _add_export(commands)
    _add_serve(commands)
    return parser


def _simulation_settings(args: argparse.Namespace) -> SimulationSettings:
    """The preset with the command line's overrides applied."""
    from dataclasses import replace

    from .contracts import RasterScan, dose_to_electrons_per_pattern
    from .physics.detector import DetectorModel, DetectorRanges
    from .physics.simulate import preset
    from .physics.specimen import SpecimenSettings

    overrides: dict[str, object] = {}
    if args.scan_shape:
        overrides["scan_shape"] = tuple(args.scan_shape)
    if args.upsample:
        overrides["upsample"] = args.upsample
    if args.noise_free:
        overrides["poisson_noise"] = False
    if args.electrons_per_pattern is not None and args.dose is not None:
        raise ParameterError("give either --electrons-per-pattern or --dose, not both")
    if args.electrons_per_pattern is not None:
        overrides["electrons_per_pattern"] = args.electrons_per_pattern
    settings = preset(args.preset, **overrides)
    if args.dose is not None:
        scan = RasterScan(settings.scan_shape, settings.scan_step_angstrom)
        extent = [max(e, settings.scan_step_angstrom) for e in scan.extent_angstrom]
        settings = replace(settings, electrons_per_pattern=dose_to_electrons_per_pattern(
            args.dose, scan.count, extent[0] * extent[1]))
    detector = {field: getattr(args, option) for option, field in DETECTOR_OPTIONS.items()
                if getattr(args, option) is not None}
    if args.randomise_detector and (detector or args.electrons_per_pattern is not None or args.dose is not None):
        raise ParameterError("--randomise-detector draws the detector and the dose: give no detector option, "
                             "--electrons-per-pattern or --dose with it")
    if detector:
        settings = replace(settings, detector=DetectorModel(**detector))  # type: ignore[arg-type]
    if args.randomise_detector:
        settings = replace(settings, detector_ranges=DetectorRanges())
    if args.structure or args.carbon_thickness:
        settings = replace(settings, specimen=SpecimenSettings(
            structure_file=str(args.structure) if args.structure else None,
            carbon_thickness_angstrom=args.carbon_thickness or 0.0,
            **({"vacancy_fraction_range": {}} if args.structure else {})))
    return settings


def run_simulate(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .device import choose_device
    from .physics.families import family_for_seed
    from .physics.simulate import simulate_recording

    common = _simulation_settings(args)
    device = choose_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seed, args.seed + args.count):
        family = family_for_seed(args.specimen, seed)
        settings = replace(common, family=family)
        stem = args.preset if family == "film" else f"{args.preset}_{family}"
        canonical = args.out / f"{stem}_{seed:06d}.h5"
        target = _exported_path(canonical, args.format, settings.scan.count * settings.detector_px**2 * 4)
        if target.exists():
            print(f"{target}: exists, skipped")
            continue
        started = time.perf_counter()
        if args.format == "canonical":
            simulate_recording(settings, seed, target, device=device)
        else:
            staging = args.out / f".{canonical.stem}.staging.h5"
            simulate_recording(settings, seed, staging, device=device)
            _export(staging, target, args.format)
            staging.unlink()
        print(f"{target}: {settings.scan.count} patterns in {time.perf_counter() - started:.1f} s")
        if args.format == "dectris":
            from .io.metadata import sidecar_path

            print(f"{sidecar_path(target)}: the scan shape, step and optics that the Dectris layout cannot hold "
                  "(a detector writes no such file: delete it to see what `inspect` asks for)")


def _exported_path(canonical: Path, file_format: str, size_bytes: int) -> Path:
    """Where a recording goes in each format (Nion Swift: .ndata below 16 MiB, as Swift does)."""
    from .io.nion import LARGE_ITEM_BYTES

    if file_format == "dectris":
        return canonical.with_name(canonical.stem + "_master.h5")
    if file_format == "nion" and size_bytes <= LARGE_ITEM_BYTES:
        return canonical.with_suffix(".ndata")
    return canonical


def _export(canonical: Path, target: Path, file_format: str) -> None:
    """Re-write a canonical recording as Nion Swift or Dectris files."""
    from .io.canonical import read_recording
    from .io.dectris import write_dectris
    from .io.nion import write_nion

    acquisition = read_recording(canonical)
    try:
        (write_dectris if file_format == "dectris" else write_nion)(target, acquisition)
    finally:
        acquisition.frames.close()


def run_reconstruct(args: argparse.Namespace) -> None:
    from .device import choose_device
    from .evaluation.figures import Panel, save_phase
    from .evaluation.metrics import resample_to_grid, resolution_angstrom, ssim_phase
    from .physics.detector_signals import recording_correction
    from .physics.reconstruct import (
        GROUND_TRUTH_ITERATIONS,
        RopSettings,
        reconstruct_acquisition,
        reconstruction_geometry,
    )
    from .scanning.acquire import select_positions

    acquisition = open_from_args(args)
    if args.positions == "all":
        indices = np.arange(acquisition.count)
    else:
        try:
            count = int(args.positions)
        except ValueError:
            raise ParameterError(f"--positions must be 'all' or a number, got {args.positions!r}") from None
        indices = select_positions(args.strategy, count, acquisition.positions_angstrom, args.seed,
                                   acquisition.scan.shape if acquisition.scan else None)
    iterations = args.iterations if args.iterations is not None else (
        GROUND_TRUTH_ITERATIONS if args.converged else RopSettings.iterations)
    settings = RopSettings(iterations=iterations, **({"step_size": args.step_size} if args.step_size else {}))
    geometry = reconstruction_geometry(acquisition, oversample=args.oversample)
    correction = None
    if not args.no_detector_correction:
        correction = recording_correction(acquisition, geometry)
        print(f"detector corrections (measured): semi-angle {correction.semiangle_mrad:.2f} mrad (metadata "
              f"{acquisition.optics.semiangle_mrad:.2f}), point-spread σ {correction.psf_px:.2f} px, descan "
              f"{correction.calibration.descan_range_px(acquisition.positions_angstrom):.2f} px across the scan, "
              f"{correction.calibration.hot_pixels} hot and {correction.calibration.dead_pixels} dead pixels, "
              f"background {correction.calibration.background_per_px:.3f} counts/px")
    result = reconstruct_acquisition(acquisition, indices, settings, geometry, choose_device(args.device),
                                     progress=True, correction=correction)
    stem = args.out.with_suffix("") if args.out.suffix in (".npy", ".png") else args.out
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.save(stem.with_suffix(".npy"), result.potential)
    region = result.grid.scan_region(acquisition.positions_angstrom)
    resolution = resolution_angstrom(result.potential.real[region], result.grid.pixel_size_angstrom)
    title = f"{len(indices)} positions ({args.strategy if args.positions != 'all' else 'all'}), {iterations} it."
    save_phase(stem.with_suffix(".png"), Panel(title, result.potential.real, result.grid, region,
                                               result.positions_angstrom, resolution))
    print(f"reconstructed {len(indices)} positions, {iterations} iterations in {result.seconds:.2f} s")
    print(f"wrote {stem.with_suffix('.npy')} (complex potential, real part = phase in rad) and "
          f"{stem.with_suffix('.png')}")
    print(f"resolution (diffractogram): {f'{resolution:.2f} Å' if resolution else 'no reflection above noise'}")
    if acquisition.ground_truth is not None:
        truth = resample_to_grid(acquisition.ground_truth, result.grid)
        print(f"SSIM against the true phase: {ssim_phase(result.potential.real, truth, region):.3f}")


def run_evaluate(args: argparse.Namespace) -> None:
    from .device import choose_device
    from .evaluation.evaluate import DosePlan, evaluate
    from .io.open import open_recording
    from .policy.checkpoint import load_model_folder

    plan = DosePlan.of(args.positions, args.reference_positions)
    device = choose_device(args.device)
    model = load_model_folder(args.model, device) if args.model else None
    overrides = metadata_overrides(args)
    acquisitions = [open_recording(path, overrides, args.metadata) for path in args.data]
    names = [path.name.split(".")[0].removesuffix("_master") for path in args.data]
    if len(set(names)) != len(names):
        raise ParameterError("two recordings have the same name; rename one")
    report = evaluate(model, acquisitions, names, plan, args.subsequences,
                      args.final_iterations, args.out, args.seed, device,
                      args.ground_truth_cache, args.strategies, seed_step=0 if args.same_seed else 1)
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out}/report.json, report.md, figures/ and positions/ "
          f"({len(report['recordings'])} recordings)")


def report_errors(action: Callable[[], None], errors: tuple[type[BaseException], ...] = (ScanServerError,)) -> int:
    """Run a command: a user error is one ``error: …`` line (exit 2), never a traceback."""
    try:
        action()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "inspect":
        from .inspection import run_inspect

        run_inspect(args.recording, metadata_overrides(args), args.metadata)
    elif args.command == "simulate":
        run_simulate(args)
    elif args.command == "reconstruct":
        run_reconstruct(args)
    elif args.command == "train":
        from .device import choose_device
        from .training.command import describe, stage_settings, train

        settings = stage_settings(args.stage, args.preset, iterations=args.iterations, batch=args.batch,
                                  learning_rate=args.learning_rate, seed=args.seed, steps=args.steps,
                                  reward=args.reward, baseline=args.baseline, normalise=args.normalise,
                                  episodes_per_specimen=args.episodes_per_specimen, sampling=args.sampling,
                                  mirrored=args.mirrored, score_iterations=args.score_iterations,
                                  sigma=args.sigma,
                                  checkpoint_every=args.checkpoint_every, snapshots=args.snapshots)
        if train(args.stage, settings, args.data, args.out, choose_device(args.device),
                 args.subsequence) is not None:
            print(describe(args.out))
    elif args.command == "evaluate":
        run_evaluate(args)
    elif args.command == "export":
        from .policy.checkpoint import export_model

        print(f"installed {export_model(args.run, args.models, args.name, args.evaluation, args.replace)}")
    elif args.command == "serve":
        from .service.serve import serve
        from .service.settings import load_settings

        serve(load_settings(args.config, host=args.host, port=args.port, zmq_port=args.zmq_port,
                            model=args.model, data_dir=args.data_dir, device=args.device))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return report_errors(lambda: _dispatch(args))


if __name__ == "__main__":
    sys.exit(main())
