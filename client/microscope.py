"""What control software implements (``Microscope``) and the loop that drives it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .client import ScanClient, Session


class Microscope(Protocol):
    def acquire(self, positions_angstrom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Visit the positions (n, 2) (y, x) Å of the field of view; return the frames
        (n, M, M) and the positions actually visited (n, 2) Å (scan coils land off target:
        report where they landed)."""
        ...


@dataclass
class ScanResult:
    """session_id; positions visited (P, 2) Å in order; per-step latency (batch sent →
    positions received) in ms; how many replies were Halton fallbacks; the final status; the
    server's warnings about the session (e.g. a field of view the model was not trained on)."""

    session_id: str
    positions_angstrom: np.ndarray
    latencies_ms: list[float] = field(default_factory=list)
    fallbacks: int = 0
    status: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_scan(microscope: Microscope, client: ScanClient, spec: dict,
             on_open: Callable[[Session], None] | None = None) -> ScanResult:
    """Open a session, acquire and submit until the budget is spent, finish it. ``on_open`` is
    given the session once it is open (e.g. to open its live view)."""
    visited: list[np.ndarray] = []
    latencies: list[float] = []
    fallbacks = 0
    with client.open_session(spec) as session:
        if on_open is not None:
            on_open(session)
        while not session.done:
            frames, actual = microscope.acquire(session.positions)
            visited.append(np.asarray(actual, dtype=np.float64).reshape(-1, 2))
            started = time.perf_counter()
            session.submit(frames, actual)
            if not session.done:
                latencies.append(1e3 * (time.perf_counter() - started))
                fallbacks += bool(session.last_reply and session.last_reply.get("fallback"))
        status = session.status()
    return ScanResult(session.id, np.concatenate(visited) if visited else np.empty((0, 2)), latencies, fallbacks,
                      status, list(session.warnings))
