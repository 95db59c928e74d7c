"""The one place that chooses where tensors live, and how many CPU threads torch uses.

Physics and policy code take a ``torch.device`` (or tensors already on one); only this
module decides between CPU and CUDA. ``configure_threads`` sets torch's intra-op thread
count; with this torch (OpenMP) the count belongs to each thread (a new thread starts with
its creator's), so the service calls it in its main thread and in every thread that computes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import ParameterError


def choose_device(requested: str = "auto") -> torch.device:
    """Resolve ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` to a device.

    ``auto`` picks the first CUDA device when one is available, else the CPU.
    Asking for CUDA on a machine without it is an error, not a silent fallback.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ParameterError(f"unknown device {requested!r}: use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {requested!r} requested but CUDA is not available")
    return device


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Use deterministic kernels for the enclosed work (matters on CUDA, where the
    accumulating scatter of the reconstruction gradient is otherwise order-dependent).
    The previous global setting is restored on exit."""
    if device.type != "cuda":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a positive integer, else one per core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


def configure_threads(threads: int = 0) -> int:
    """Set torch's intra-op CPU threads for the calling thread (0: ``default_threads()``);
    returns the count."""
    if threads < 0:
        raise ParameterError(f"threads must be ≥ 0, got {threads}")
    count = threads or default_threads()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
