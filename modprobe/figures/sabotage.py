"""Redraw the sabotage figures from a report folder of ``modprobe sabotage``.

    python figures/sabotage.py REPORT [--out DIR]

Reads ``REPORT/summary.json``, ``rates.csv``, ``topk.csv`` and ``calibration.csv`` (no
model, no agent outputs needed) and writes ``reliability.png``, ``sabotage_bars.png``
(``sabotage_bars_modality.png`` when modalities group several agents) and
``topk_coverage.png`` into DIR (default: ``REPORT/figures``). Edit the plotting functions in
`modprobe.analysis.sabotage.plots` to restyle them for a paper.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modprobe.analysis.sabotage.report import ReportFolderError, draw_figures


def main(argv: list[str] | None = None) -> int:
    """``python figures/sabotage.py REPORT [--out DIR]``; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="report folder (modprobe sabotage)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the figures (default: REPORT/figures)")
    args = parser.parse_args(argv)
    try:
        files = draw_figures(args.report, args.out or args.report / "figures")
    except ReportFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(str(f) for f in files))
    return 0

