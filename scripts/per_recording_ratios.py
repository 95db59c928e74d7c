"""Per recording, each strategy's truth-scored dose ratio against Halton (``evaluation.dose.dose_ratio``
on an evaluation's ``report.json``), and their mean over the families with vacuum.

    .venv/bin/python scripts/per_recording_ratios.py docs/results/calibrated-reconstruction/abtem [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from scan_server.evaluation.dose import dose_ratio

STRATEGIES = ("value-map", "adaptive", "random", "oracle-material")
WITHOUT_VACUUM = ("film", "contamination")


def main() -> None:
    for folder in map(Path, sys.argv[1:]):
        report = json.loads((folder / "report.json").read_text())
        counts, reference = report["positions"], report["reference_positions"]
        recordings = report["per_recording"]

        def curves(strategy: str) -> list[list[float]]:
            return [[recordings[name]["strategies"][strategy][str(c)][report["headline_score"]] for c in counts]
                    for name in recordings]

        halton = curves("halton")
        ratios = {s: dose_ratio(counts, curves(s), halton, reference)["per_recording"] for s in STRATEGIES
                  if all(s in r["strategies"] for r in recordings.values())}
        print(f"## {folder}\n\n| recording | " + " | ".join(ratios) + f" | Halton's score at {reference} |")
        print("| --- " * (len(ratios) + 2) + "|")
        for i, name in enumerate(recordings):
            print(f"| {name} | " + " | ".join(f"{r[i]:.2f}" for r in ratios.values()) +
                  f" | {halton[i][counts.index(reference)]:.3f} |")
        vacuum = [i for i, r in enumerate(recordings.values()) if r["family"] not in WITHOUT_VACUUM]
        print(f"\nmean over the {len(vacuum)} recordings with vacuum: " +
              ", ".join(f"{s} {np.mean([r[i] for i in vacuum]):.2f}" for s, r in ratios.items()) + "\n")


if __name__ == "__main__":
    main()
