"""The paper's Table I from `scan-server evaluate` reports: one row per report.json.

Usage: python scripts/table1.py REPORT_DIR... [--out docs/results/table-1/README-table.md] [--strategy value-map]
Prints (and writes) a markdown table: positions, sub-sequences, dose reduction against
the full scan, SSIM of each strategy, Q_SSIM of the learned one (adaptive, or --strategy) against random and Halton with
the 95 % bootstrap interval, Q_res against random, and the paper's figures beside ours.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Table I of Schloz et al. (Q_SSIM, Q_res against random, averaged over 25 data sets).
#: Q_res of 250/5 is blank in the table; the text gives 27.57 %.
PAPER = {(250, 2): (16.71, 9.74), (250, 3): (22.89, 15.06), (250, 4): (24.96, 19.79), (250, 5): (25.75, 27.57),
         (335, 5): (12.53, 28.71), (420, 5): (12.29, 29.23), (500, 5): (8.16, 31.59)}


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "−")


def _percent(entry: dict) -> str:
    low, high = entry["ci95"]
    return f"{_signed(100 * entry['mean'])} % [{_signed(100 * low)}, {_signed(100 * high)}]"


def _q(report: dict, strategy: str, key: str) -> dict | float:
    """A Q figure of ``strategy``: its own (later reports) or the top-level one (adaptive's, earlier)."""
    return report[strategy][key] if key in report.get(strategy, {}) else report[key]


def row(report: dict, full: int, strategy: str = "adaptive") -> str:
    # reports before the dose–quality curves held one count in "positions"; later ones name it
    positions, count = report.get("reference_positions", report["positions"]), report["subsequences"]
    if isinstance(positions, list):
        positions = positions[-1]
    paper = PAPER.get((positions, count))
    ssim = " | ".join(f"{report[s]['ssim_mean']:.3f}" for s in (strategy, "random", "halton", "raster"))
    paper_text = f"{paper[0]:+.2f} % / {paper[1]:+.2f} %" if paper else "—"
    q_random, q_halton = _q(report, strategy, "q_ssim_vs_random"), _q(report, strategy, "q_ssim_vs_halton")
    return (f"| {positions} | {count} | {full / positions:.0f}× | {ssim} | {_percent(q_random)} | "
            f"{_percent(q_halton)} | {_signed(100 * _q(report, strategy, 'q_res_vs_random'))} % | {paper_text} |")


def table(reports: list[dict], full: int, strategy: str = "adaptive") -> str:
    header = (f"| positions | sub-sequences | dose reduction | SSIM {strategy} | random | Halton | sparse raster | "
              "Q_SSIM vs random | Q_SSIM vs Halton | Q_res vs random | paper: Q_SSIM / Q_res vs random |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ordered = sorted(reports, key=lambda r: (r.get("reference_positions", r["positions"]), r["subsequences"]))
    return "\n".join([header, *(row(r, full, strategy) for r in ordered)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+", help="evaluate output folders (holding report.json)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--full-positions", type=int, default=10000, help="positions of the full scan (dose ratio)")
    parser.add_argument("--strategy", default="adaptive", help="the learned strategy of the rows (value-map for v2)")
    args = parser.parse_args()
    text = table([json.loads((folder / "report.json").read_text()) for folder in args.reports], args.full_positions,
                 args.strategy)
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
