"""Redraw the interference radar and flip-rate figures from one or more finished runs.

    python figures/interference.py runs/base runs/finetuned --out docs/figures/interference
    python figures/interference.py runs/base runs/finetuned --names base fine-tuned

Each RUN is a folder written by ``modprobe interference`` (either form: a model
run or a TABLE analysis); its ``summary.json`` holds the accuracies and flip rates. All
runs share one radar (one polygon each) and one grouped bar chart of delta with
intervals; each model run's attention shift by layer gets its own figure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modprobe.errors import ModprobeError
from modprobe.run import load_run
from modprobe.study.interference_report import draw_figures


def summary_and_shift(run: str | Path) -> tuple[dict, object]:
    """A finished interference run's summary and attention shift (empty if absent).

    Args:
        run: The run folder (``modprobe interference``): a model run, or the output folder
            of the TABLE form (a ``summary.json`` and no manifest: no attention shift).

    Returns:
        ``summary.json`` as a dict, and the attention-shift table.

    Raises:
        FileNotFoundError: the folder has neither a manifest nor a ``summary.json``.
    """
    import json

    import pandas as pd

    from modprobe.study.runfolder import MANIFEST

    folder = Path(run)
    if not (folder / MANIFEST).is_file():
        if (folder / "summary.json").is_file():
            return (json.loads((folder / "summary.json").read_text(encoding="utf-8")),
                    pd.DataFrame())
        raise FileNotFoundError(f"{folder} has no summary.json: not a finished interference "
                                "run (or TABLE analysis) folder")
    loaded = load_run(run)
    return loaded.summary, loaded.tables.get("attention_shift", pd.DataFrame())


def main(argv: Sequence[str] | None = None) -> int:
    """``python figures/interference.py RUN [RUN ...] [--names ...] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (each with summary.json)")
    parser.add_argument("--names", nargs="+", default=None,
                        help="legend names, one per run (default: the folder names)")
    parser.add_argument("--out", default="figures/interference", help="output folder")
    args = parser.parse_args(argv)
    names = args.names or [Path(r).resolve().name for r in args.runs]
    if len(names) != len(args.runs):
        print(f"error: --names gives {len(names)} names for {len(args.runs)} runs",
              file=sys.stderr)
        return 2
    if len(set(names)) != len(names):
        print(f"error: two runs share the legend name {names}; pass --names", file=sys.stderr)
        return 2
    try:
        runs = {name: summary_and_shift(run) for name, run in zip(names, args.runs)}
    except (FileNotFoundError, ValueError, ModprobeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in draw_figures(Path(args.out), runs):
        print(f"figure: {path}")
    return 0

