"""Training settings, one docstring per field (defaults: the ``cpu`` preset)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError

#: per-position rewards (paper eq. 8 with γ = 0) and the per-sub-sequence one (``rewards.py``)
POSITION_REWARDS = ("voronoi", "shared", "error")
STEP_REWARDS = ("quality",)
REWARDS = POSITION_REWARDS + STEP_REWARDS
#: what REINFORCE subtracts from the returns (``reinforce.advantages``)
BASELINES = ("none", "batch", "halton", "specimen")
#: how REINFORCE samples (``reinforce.py``): whole sampled episodes, or branches from a shared state
SAMPLINGS = ("path", "vine")


@dataclass(frozen=True)
class TrainSettings:
    """preset: model size (``cpu``, ``paper``, ``tiny`` for tests).
    iterations: optimiser steps of this stage. batch: episodes (or reconstructions) per step
    and process. learning_rate: Adam's step (paper: 1e-5 for the CAE and the RNN in the
    text, 1e-6 in Table II). seed: everything random derives from it (and the DDP rank).
    steps: sub-sequences per episode (T; 5 × 50 = 250 positions). rop_iterations: ROP
    iterations inside the loop (paper: 5). reward: ``voronoi`` (paper), ``shared`` (Fig. 3a)
    or ``error`` (difference reward from the ground truth), per position; ``quality`` (the
    headline score's gain after each action, needs the ground truth), per sub-sequence.
    baseline: ``none`` (paper), ``batch`` (the batch mean of each return) or ``halton`` (the
    Halton scan's return on the same specimen; ``quality`` only) or ``specimen`` (the mean
    return of the other episodes on the same specimen); ``True``/``False`` of older runs read
    as ``batch``/``none``. episodes_per_specimen: each step plays batch / this many specimens,
    each this many times (``specimen`` needs ≥ 2). normalise: divide the advantages by their
    standard deviation over the batch. sampling: ``path`` (every action of an episode sampled,
    credited with its return) or ``vine`` (``quality`` with the ``specimen`` baseline: each
    specimen's episodes follow the policy's means to one random sub-sequence, branch there
    with sampled actions and are credited with that sub-sequence's gain; the curve is the
    means' own score). mirrored: consecutive episodes on a specimen take opposite deviations
    (ε, −ε; an even number per specimen). score_iterations: ``vine`` only; ROP iterations
    from scratch of the reconstructions its reward scores (the branch's, the shared state's
    and the logged curve's, Halton's included), so that the reward is the converged
    reconstruction's and not how far ``rop_iterations`` get (None: the in-loop ones).
    sigma: the Gaussian policy's σ (normalised units).
    positions_range: subset sizes for the autoencoder's partial reconstructions.
    checkpoint_every: iterations between checkpoints. snapshots: also keep each checkpoint's
    model weights (``RUN/snapshots/STAGE-it-N.safetensors``; ``scripts/policy_curve.py`` scores
    them)."""

    preset: str = "cpu"
    iterations: int = 100
    batch: int = 8
    learning_rate: float = 1e-4
    seed: int = 0
    steps: int = 5
    rop_iterations: int = 5
    reward: str = "voronoi"
    baseline: str = "none"
    normalise: bool = False
    episodes_per_specimen: int = 1
    sampling: str = "path"
    mirrored: bool = False
    score_iterations: int | None = None
    sigma: float = 0.0125
    positions_range: tuple[int, int] = (50, 500)
    checkpoint_every: int = 25
    snapshots: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.baseline, bool):  # the flag of older runs' checkpoints
            object.__setattr__(self, "baseline", "batch" if self.baseline else "none")
        if self.reward not in REWARDS:
            raise ParameterError(f"unknown reward {self.reward!r}: choose one of {', '.join(REWARDS)}")
        if self.baseline not in BASELINES:
            raise ParameterError(f"unknown baseline {self.baseline!r}: choose one of {', '.join(BASELINES)}")
        if self.baseline == "halton" and self.reward not in STEP_REWARDS:
            raise ParameterError("the halton baseline compares a sub-sequence's return with the Halton scan's: "
                                 f"it needs --reward {' or '.join(STEP_REWARDS)}")
        if self.baseline == "specimen" and self.episodes_per_specimen < 2:
            raise ParameterError("the specimen baseline compares episodes on the same specimen: "
                                 "it needs --episodes-per-specimen 2 or more")
        if self.sampling not in SAMPLINGS:
            raise ParameterError(f"unknown sampling {self.sampling!r}: choose one of {', '.join(SAMPLINGS)}")
        if self.sampling == "vine" and (self.reward not in STEP_REWARDS or self.baseline != "specimen"):
            raise ParameterError("vine sampling compares the branches from one state: it needs --reward "
                                 f"{' or '.join(STEP_REWARDS)} and --baseline specimen")
        if self.score_iterations is not None and (self.sampling != "vine" or self.score_iterations < 1):
            raise ParameterError("--score-iterations (≥ 1) scores the branches of vine sampling: it needs "
                                 "--sampling vine")
        if self.mirrored and self.episodes_per_specimen % 2:
            raise ParameterError("mirrored deviations come in pairs: --episodes-per-specimen must be even")
        if self.episodes_per_specimen < 1 or self.batch % self.episodes_per_specimen:
            raise ParameterError(f"--episodes-per-specimen must divide the batch ({self.batch})")
        if self.iterations < 0 or self.batch < 1 or self.steps < 2:
            raise ParameterError("iterations ≥ 0, batch ≥ 1 and steps ≥ 2 are required")
        if not self.learning_rate > 0 or not self.sigma > 0:
            raise ParameterError("learning rate and σ must be positive")


#: Defaults per (preset, stage) where they differ from the dataclass's.
STAGE_DEFAULTS = {
    ("cpu", "cae"): {"iterations": 300, "learning_rate": 1e-3},
    ("cpu", "pretrain"): {"iterations": 200, "learning_rate": 1e-3},
    ("cpu", "rl"): {"iterations": 100, "learning_rate": 1e-4},
    ("paper", "cae"): {"iterations": 100000, "learning_rate": 1e-5, "batch": 24},
    ("paper", "pretrain"): {"iterations": 5000, "learning_rate": 1e-5, "batch": 24},
    ("paper", "rl"): {"iterations": 20000, "learning_rate": 1e-5, "batch": 24},
    ("cpu", "value-map"): {"iterations": 400, "learning_rate": 2e-3, "positions_range": (50, 350)},
    ("paper", "value-map"): {"iterations": 2000, "learning_rate": 1e-3, "batch": 24, "positions_range": (50, 350)},
    ("cpu", "imitate"): {"iterations": 200, "learning_rate": 1e-3},
    ("paper", "imitate"): {"iterations": 5000, "learning_rate": 1e-5, "batch": 24},
    ("tiny", "imitate"): {"iterations": 3, "learning_rate": 1e-3, "batch": 2, "steps": 3},
    ("tiny", "value-map"): {"iterations": 3, "learning_rate": 1e-3, "batch": 2, "positions_range": (10, 40)},
    ("tiny", "cae"): {"iterations": 3, "learning_rate": 1e-3, "batch": 2, "positions_range": (10, 40)},
    ("tiny", "pretrain"): {"iterations": 3, "learning_rate": 1e-3, "batch": 2, "steps": 3},
    ("tiny", "rl"): {"iterations": 3, "learning_rate": 1e-3, "batch": 2, "steps": 3},
}
