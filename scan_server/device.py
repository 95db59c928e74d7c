"""The one place that chooses where tensors live.

Physics and policy code take a ``torch.device`` (or tensors already on one); only this
module decides between CPU and CUDA.
"""

from __future__ import annotations

import contextlib
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
