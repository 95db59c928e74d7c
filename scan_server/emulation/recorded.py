"""Replay recorded experiments through a running server, as if the client were the detector.

For each recording and strategy a session is opened with the recording's optics and field
of view; the server's positions are answered with the nearest unused recorded patterns
(the recording's own positions are reported, relative to its first corner). The visited
patterns are then scored exactly as ``scan-server evaluate`` scores them (same ground
truth, same final reconstruction, same report), plus each strategy's per-step latency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scan_client.client import ScanClient, Session
from scan_client.microscope import run_scan
from scan_client.protocol import FRAME_DTYPES
from tqdm import tqdm

from ..contracts import Acquisition
from ..evaluation.evaluate import (
    DosePlan,
    ground_truth,
    score_strategies,
    summarise,
    write_outputs,
)
from ..scanning.registry import ADAPTIVE, SERVED_STRATEGIES
from ..scanning.registry import STRATEGIES as REGISTRY
from ..scanning.virtual_microscope import VirtualMicroscope

STRATEGIES = SERVED_STRATEGIES


class RecordedMicroscope:
    """A ``Microscope`` over a recording: positions in the spec frame (origin at the first
    corner of the recorded field of view); remembers which patterns it used."""

    def __init__(self, acquisition: Acquisition) -> None:
        self.virtual = VirtualMicroscope.over(acquisition)
        self.origin = np.asarray(self.virtual.field.origin_angstrom)
        self.indices: list[np.ndarray] = []

    def acquire(self, positions_angstrom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        exposure = self.virtual.acquire(np.asarray(positions_angstrom) + self.origin)
        self.indices.append(exposure.indices)
        frames = exposure.frames
        if frames.dtype.name not in FRAME_DTYPES:  # anything else is sent as float32
            frames = frames.astype(np.float32)
        return frames, exposure.positions_angstrom - self.origin

    @property
    def visited(self) -> np.ndarray:
        return np.concatenate(self.indices) if self.indices else np.empty(0, dtype=np.int64)


def spec_for(acquisition: Acquisition, strategy: str, positions: int, subsequence: int, seed: int,
             label: str = "") -> dict:
    """The session spec of a recording (docs/protocol.md)."""
    return {"energy_ev": acquisition.optics.energy_ev, "semiangle_mrad": acquisition.optics.semiangle_mrad,
            "c10_angstrom": acquisition.optics.c10_angstrom, "c30_angstrom": acquisition.optics.c30_angstrom,
            "field_of_view_angstrom": [max(float(v), 1e-3) for v in np.ptp(acquisition.positions_angstrom, axis=0)],
            "detector_px": acquisition.detector_px,
            "detector_sampling_inv_angstrom": acquisition.detector_sampling_inv_angstrom,
            "total_positions": positions, "subsequence": subsequence, "strategy": strategy, "seed": seed,
            "electrons_per_pattern": acquisition.electrons_per_pattern, "label": label}


@dataclass
class Latencies:
    values_ms: dict[str, list[float]] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)

    def add(self, strategy: str, values: list[float], fallbacks: int) -> None:
        self.values_ms.setdefault(strategy, []).extend(values)
        self.fallbacks[strategy] = self.fallbacks.get(strategy, 0) + fallbacks

    def summary(self) -> dict:
        return {name: {"p50": float(np.percentile(v, 50)) if v else 0.0,
                       "p95": float(np.percentile(v, 95)) if v else 0.0,
                       "steps": len(v), "fallbacks": self.fallbacks.get(name, 0)}
                for name, v in self.values_ms.items()}


def replay(client: ScanClient, acquisitions: list[Acquisition], names: list[str], strategies: list[str],
           positions: int | list[int], final_iterations: int, out: Path, seed: int, device,
           on_open: Callable[[Session], None] | None = None) -> dict:
    """Replay every recording with every strategy; write report.json/md, figures, positions.
    ``positions``: one count, or several (a dose–quality curve: a sequential strategy's session
    runs to the largest and is scored on its prefixes; any other gets a session per count).
    ``on_open``: given each session as it opens (``--view``)."""
    plan = DosePlan.of([positions] if isinstance(positions, int) else positions)
    subsequence = 50
    if ADAPTIVE in strategies:
        subsequence = int(client.model()["settings"]["policy"]["subsequence"])
    latencies = Latencies()
    results, warnings = [], []
    for i, (name, acquisition) in enumerate(tqdm(list(zip(names, acquisitions)), desc="replay", unit="recording")):
        chosen = {}
        for strategy in strategies:
            counts = [plan.largest] if REGISTRY[strategy].sequential else list(plan.positions)
            chosen[strategy] = {}
            for count in counts:
                microscope = RecordedMicroscope(acquisition)
                result = run_scan(microscope, client, spec_for(acquisition, strategy, count, subsequence, seed + i,
                                                               label=f"replay of {name}"), on_open)
                chosen[strategy][count] = microscope.visited
                latencies.add(strategy, result.latencies_ms, result.fallbacks)
                warnings += [f"{name}, {strategy}: {w}" for w in result.warnings]
            if REGISTRY[strategy].sequential:
                chosen[strategy] = {c: chosen[strategy][plan.largest][:c] for c in plan.positions}
        full = ground_truth(acquisition, device, progress=True)
        results.append(score_strategies(acquisition, full, chosen, final_iterations, plan.reference_positions,
                                        device, progress=True))
    report = summarise(results, plan, final_iterations, names, subsequence)
    report["latency_ms"] = latencies.summary()
    report["warnings"] = warnings
    report["server"] = client.url
    report["model"] = client.health().get("model") if any(REGISTRY[s].needs_model for s in strategies) else None
    write_outputs(out, report, results, names)
    return report
