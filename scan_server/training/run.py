"""The training loop every stage shares: seeds, checkpoints, resume, learning curves,
progress, and DDP when launched with ``torchrun``.

A run folder holds, per stage (``cae``, ``pretrain``, ``rl``): ``<stage>.checkpoint.safetensors``
(model, optimizer tensors, torch RNG) with ``<stage>.checkpoint.json`` (iteration,
optimizer scalars, numpy RNG, settings), ``<stage>.csv`` and ``<stage>.png`` (learning
curves). ``model.safetensors`` + ``model_card.json`` hold the weights of the last stage that
ended: a stage stopped with Ctrl-C keeps its weights in its checkpoint until it is run again
(to its end, or with no more iterations than it did: then they become the run's model).
Nothing is pickled: tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import distributed as dist
from tqdm import tqdm

from ..policy.model import AdaptiveModel
from ..policy.model_folder import MODEL_FILE, ModelFolder


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> Distributed:
        """Joins the process group when started by torchrun (WORLD_SIZE > 1)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(rank=int(os.environ.get("RANK", "0")), world=world)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return module
        return torch.nn.parallel.DistributedDataParallel(module)

    def finish(self) -> None:
        """Wait for every process, then leave the process group."""
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world


@dataclass
class StageState:
    """Everything needed to continue a stage exactly where it stopped."""

    iteration: int
    rng: np.random.Generator
    generator: torch.Generator
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # time spent in the stage's iterations, over every resumed run


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_from_files(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in info["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in info["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def checkpoint_paths(run: Path, stage: str) -> tuple[Path, Path]:
    """A stage's checkpoint files in a run folder: (weights .safetensors, state .json)."""
    return run / f"{stage}.checkpoint.safetensors", run / f"{stage}.checkpoint.json"


def snapshot_path(run: Path, stage: str, iteration: int) -> Path:
    """Where a stage's model weights after ``iteration`` are kept (``run_stage(snapshots=True)``)."""
    return run / "snapshots" / f"{stage}-it-{iteration}.safetensors"


def save_snapshot(run: Path, stage: str, model: AdaptiveModel, iteration: int) -> None:
    path = snapshot_path(run, stage, iteration)
    path.parent.mkdir(exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def save_checkpoint(run: Path, stage: str, model: AdaptiveModel, optimizer: torch.optim.Optimizer,
                    state: StageState, record: dict) -> None:
    tensors, optimizer_info = _optimizer_to_files(optimizer)
    tensors.update({f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    tensors["rng.torch"] = state.generator.get_state()
    weights, info = checkpoint_paths(run, stage)
    weights_tmp, info_tmp = weights.with_name(weights.name + ".tmp"), info.with_name(info.name + ".tmp")
    save_file(tensors, str(weights_tmp))
    info_tmp.write_text(json.dumps({
        "iteration": state.iteration, "seconds": state.seconds, "optimizer": optimizer_info,
        "numpy_rng": state.rng.bit_generator.state, "history": state.history, **record}, indent=1, default=str))
    os.replace(weights_tmp, weights)
    os.replace(info_tmp, info)


def load_checkpoint(run: Path, stage: str, model: AdaptiveModel, optimizer: torch.optim.Optimizer
                    ) -> StageState | None:
    weights, info_path = checkpoint_paths(run, stage)
    if not (weights.is_file() and info_path.is_file()):
        return None
    tensors = load_file(str(weights))
    info = json.loads(info_path.read_text())
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    _optimizer_from_files(optimizer, tensors, info["optimizer"])
    rng = np.random.default_rng()
    rng.bit_generator.state = info["numpy_rng"]
    generator = torch.Generator()
    generator.set_state(tensors["rng.torch"])
    return StageState(iteration=info["iteration"], rng=rng, generator=generator, history=info["history"],
                      seconds=float(info.get("seconds", 0.0)))


def write_curves(run: Path, stage: str, history: list[dict]) -> None:
    if not history:
        return
    keys = list(history[0])
    with (run / f"{stage}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in keys if k != "iteration"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    x = [h["iteration"] for h in history]
    for ax, key in zip(axes[0], metrics):
        ax.plot(x, [h[key] for h in history], lw=1)
        ax.set_xlabel("iteration")
        ax.set_title(key, fontsize=9)
    fig.suptitle(f"{run.name}: {stage}", fontsize=10)
    fig.tight_layout()
    fig.savefig(run / f"{stage}.png", dpi=100)
    plt.close(fig)


class GracefulStop:
    """While active (main thread only), the first Ctrl-C asks the loop to stop after the current
    iteration (which is then checkpointed); a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this iteration, then saving a checkpoint (Ctrl-C again to stop at once)",
              flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _start_or_resume(run: Path, stage: str, model: AdaptiveModel, optimizer: torch.optim.Optimizer,
                     iterations: int, seed: int, distributed: Distributed) -> StageState:
    state = load_checkpoint(run, stage, model, optimizer)
    if state is None:
        return StageState(0, np.random.default_rng([seed, distributed.rank]),
                          torch.Generator().manual_seed(seed * 1000 + distributed.rank))
    if distributed.main and state.iteration < iterations:
        print(f"{stage}: resuming at iteration {state.iteration} of {iterations}")
    return state


def run_stage(run: Path, stage: str, model: AdaptiveModel, optimizer: torch.optim.Optimizer, iterations: int,
              step: Callable[[StageState], dict], seed: int, card: dict, distributed: Distributed,
              checkpoint_every: int = 25, snapshots: bool = False) -> StageState:
    """Calls ``step`` until ``iterations``; checkpoints every ``checkpoint_every``, at the end and
    when interrupted (Ctrl-C: after the current iteration); resumes from the stage's checkpoint
    when there is one. A stage already finished is left as it is. ``snapshots``: every checkpoint's
    model weights are also kept (``snapshot_path``), for curves of the weights themselves."""
    run.mkdir(parents=True, exist_ok=True)
    state = _start_or_resume(run, stage, model, optimizer, iterations, seed, distributed)
    record = {"stage": stage, "seed": seed, "iterations": iterations, **card}
    if state.iteration >= iterations and (run / MODEL_FILE).is_file():
        if distributed.main and _stopped_early(run, stage):
            # stopped (Ctrl-C), then asked for no more iterations than were done: the checkpoint's weights
            # (loaded above) become the run's model, not the previous stage's left in the folder
            save_checkpoint(run, stage, model, optimizer, state, {**record, "iterations": state.iteration})
            _save_model(run, stage, model, card, state)
        elif distributed.main:
            print(f"{stage}: already finished ({state.iteration} iterations); nothing to do")
        return state
    progress = tqdm(total=iterations, initial=state.iteration, desc=stage, disable=not distributed.main)
    with GracefulStop() as stop:
        while state.iteration < iterations:
            started = time.perf_counter()
            metrics = {k: distributed.mean(v) for k, v in step(state).items()}
            state.iteration += 1
            state.seconds += time.perf_counter() - started
            state.history.append({"iteration": state.iteration, **metrics})
            progress.update(1)
            progress.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})
            due = state.iteration % checkpoint_every == 0 or state.iteration == iterations
            if distributed.main and (due or stop.requested):
                save_checkpoint(run, stage, model, optimizer, state, record)
                write_curves(run, stage, state.history)
                if snapshots:
                    save_snapshot(run, stage, model, state.iteration)
            if stop.requested:
                progress.close()
                print(f"{stage}: stopped after iteration {state.iteration} of {iterations}, saved in "
                      f"{checkpoint_paths(run, stage)[0]}; run the same command to go on", flush=True)
                raise KeyboardInterrupt
    progress.close()
    if distributed.main:
        _save_model(run, stage, model, card, state)
    return state


def _stopped_early(run: Path, stage: str) -> bool:
    """Whether the stage's checkpoint was saved before the iterations it was run for (Ctrl-C)."""
    info = json.loads(checkpoint_paths(run, stage)[1].read_text())
    return int(info.get("iterations", info["iteration"])) > int(info["iteration"])


def _save_model(run: Path, stage: str, model: AdaptiveModel, card: dict, state: StageState) -> None:
    card = {**card, "stage": stage, "git_commit": git_commit(),
            f"{stage}_seconds": state.seconds, f"{stage}_iterations": state.iteration}
    ModelFolder(run).save(model, card)
    print(f"{stage}: the model after {state.iteration} iterations is in {run}")
