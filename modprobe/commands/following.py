"""Bring your own predictions: the section-1 analysis of any model's outputs.

    modprobe following TABLE [--out DIR] [--all-conflicts] [--axis rel|abs]
        [--entropy-floor F] [--bootstrap N] [--seed S] [--group G] [--confidence C]
        [--cluster COLUMN | --no-cluster] [--estimate logistic|monotone|auto]

TABLE is a CSV or Parquet file with columns ``h_text, h_vision, y_text, y_vision,
y_multi`` (optional ``model, group, correct_text, correct_vision, cluster``; see
`modprobe.analysis.table`). Works for closed API models too: the entropies can come
from returned log-probabilities (`modprobe.analysis.entropy`).

Defaults follow the paper and the study: the correctness filter runs when the table has
the correctness columns, a ``cluster`` column is found and used, and a run folder's
``items.csv`` is read with the options of its ``manifest.json`` (model name, axis,
entropy floor, bootstrap, seed), so ``modprobe following RUN/items.csv``
reproduces the run's summary. For every model it prints the filter's counts, TFR, the
trend test, the goodness of fit, both balance points, which to trust, the
median-entropy split, and as its last line ``balance_point=<x> ci=[<lo>, <hi>]`` (or
``balance_point=none (<reason>)``). With ``--out`` it writes ``summary.json``,
``summary.txt`` and the figures. Invalid tables exit with code 2 and a message naming
the column and row. Definitions: docs/science.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modprobe import cli
from modprobe.commands import options
from modprobe.commands.options import DEFAULT_RESAMPLES

if TYPE_CHECKING:
    from modprobe.analysis.following.results import FollowingReport

#: ``modprobe.analysis.following.law.ESTIMATES`` and ``modprobe.analysis.following.report.AUTO`` (a test checks).
ESTIMATES: tuple[str, ...] = ("logistic", "monotone", "auto")
AUTO = "auto"

#: Options of a run's manifest.json used as defaults when TABLE is a run's items.csv.
_RUN_OPTIONS = {"axis": "axis", "entropy_floor": "entropy_floor", "n_bootstrap": "bootstrap",
                "seed": "seed", "balance_estimate": "estimate", "all_conflicts": "all_conflicts"}


def build_parser(prog: str = "modprobe following") -> argparse.ArgumentParser:
    """The parser of ``modprobe following``."""
    parser = options.new_parser(
        prog, "Modality-following analysis (TFR, law, balance point) of a prediction table.")
    parser.add_argument(
        "table",
        help="CSV or Parquet file with h_text, h_vision, y_text, y_vision, y_multi "
        "(optional model, group, correct_text, correct_vision, cluster)",
    )
    options.add_out(parser, "directory for summary.json, summary.txt and figures (must be "
                            "empty)", path=True,
                    overwrite="write into a non-empty --out, replacing the files there")
    filt = parser.add_mutually_exclusive_group()
    filt.add_argument("--filter-correct", action="store_true", default=None,
                      help="require the paper's filter (error without correctness columns); "
                      "it runs by default whenever the columns are there")
    filt.add_argument("--all-conflicts", action="store_true", default=None,
                      help="keep every conflict, also those with a wrong unimodal answer")
    parser.add_argument("--axis", choices=("rel", "abs"), default=None,
                        help="x axis: dH_rel (rel, default) or H_t - H_v in nats (abs)")
    parser.add_argument("--entropy-floor", type=cli.nonnegative_float, default=None,
                        help="floor (nats) applied to both entropies before the axis (default 0)")
    options.add_bootstrap(parser, default=None,
                          help=f"bootstrap replicates (default {DEFAULT_RESAMPLES}, or the run's)")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=None,
                        help="bootstrap seed (default 0, or the run's)")
    parser.add_argument("--group", default="conflict",
                        help="with a group column, the group to analyse")
    parser.add_argument("--confidence", type=cli.probability, default=0.95, help="interval level")
    clus = parser.add_mutually_exclusive_group()
    clus.add_argument("--cluster", default=AUTO, metavar="COLUMN",
                      help="column of cluster labels: resample whole clusters of correlated "
                      "items (auto: a column named 'cluster' when there is one)")
    clus.add_argument("--no-cluster", action="store_true",
                      help="treat items as independent even if the table has clusters")
    parser.add_argument("--estimate", choices=ESTIMATES, default=None,
                        help="balance point reported last and used for regions: auto "
                        "(default: the recommended one), or logistic (the paper's display) "
                        "or monotone to force one; none is reported without an established "
                        "trend")
    return parser


def _run_defaults(table: Path) -> tuple[dict[str, Any], str | None]:
    """Options of the run whose ``items.csv`` this is (``{}`` for any other table)."""
    manifest = table.parent / "manifest.json"
    if table.name not in ("items.csv", "items.parquet") or not manifest.is_file():
        return {}, None
    try:
        options = json.loads(manifest.read_text(encoding="utf-8")).get("options", {})
    except (OSError, ValueError):
        return {}, None
    found = {key: options[key] for key in _RUN_OPTIONS if key in options}
    return found, options.get("model")


def write_figures(report: FollowingReport, out: Path) -> list[Path]:
    """Write the command's figures for ``report`` into ``out``.

    Args:
        report: The analysis.
        out: The folder (created if needed).

    Returns:
        The PNG files written.
    """
    # Imported here: plotting is only needed when --out is given.
    from modprobe.analysis.following.plots import (
        plot_following_curve,
        plot_uncertainty_distribution,
    )

    out.mkdir(parents=True, exist_ok=True)
    written = []
    laws = report.laws
    x_label = r"$\Delta H_{rel}$" if report.axis == "rel" else r"$H_t - H_v$ (nats)"
    if report.entropy_floor > 0:
        x_label += f", entropy floor {report.entropy_floor:g}"
    if laws:
        fig = plot_following_curve(laws, x_label=x_label, title="Modality following",
                                   show_isotonic=len(laws) == 1)
        written += [out / "following_curve.png"]
        _save(fig, written[-1])
    halves = {}
    for name, m in report.models.items():
        if m.split is not None:
            halves[f"{name} low entropy"] = m.split.low
            halves[f"{name} high entropy"] = m.split.high
    if halves:
        fig = plot_following_curve(
            halves, x_label=x_label, title="Median split of total entropy $H_t + H_v$"
        )
        written += [out / "following_split.png"]
        _save(fig, written[-1])
    fig = plot_uncertainty_distribution(
        {
            name: m.items.loc[m.items["label"] != "no_conflict", "x"]
            for name, m in report.models.items()
        },
        x_label=x_label,
    )
    written += [out / "uncertainty_distribution.png"]
    fig.savefig(written[-1], dpi=150)
    return written


def report_summary(report: FollowingReport) -> dict[str, Any]:
    """``summary.json`` of the CLI: one entry per model (the study's fields), JSON-ready."""
    from modprobe.io import json_ready

    models = {name: m.to_dict() for name, m in report.models.items()}
    if len(models) == 1:
        only = next(iter(models.values()))
        return json_ready({**only, "lines": report.summary_lines(), "models": models})
    return json_ready({"models": models, "lines": report.summary_lines()})


def _save(fig: Any, path: Path) -> None:
    """Save a figure atomically (a kill never leaves half a PNG)."""
    from modprobe.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 invalid input, see ``--help``)."""
    args = build_parser().parse_args(argv)
    from modprobe.analysis.following.report import analyze_following
    from modprobe.analysis.table import read_table
    from modprobe.io import write_bytes, write_json

    if args.out is not None:
        args.out = cli.check_out(args.out, overwrite=args.overwrite, what="figures")
    run, run_model = _run_defaults(Path(args.table))
    given = {"axis": args.axis, "entropy_floor": args.entropy_floor,
             "n_bootstrap": args.bootstrap, "seed": args.seed,
             "balance_estimate": args.estimate}
    options = {"axis": "rel", "entropy_floor": 0.0, "n_bootstrap": DEFAULT_RESAMPLES,
               "seed": 0, "balance_estimate": "auto"}
    for key in options:
        if given[key] is not None:
            options[key] = given[key]
        elif key in run:
            options[key] = run[key]
    filter_correct = None
    if args.all_conflicts or (args.filter_correct is None and run.get("all_conflicts")):
        filter_correct = False
    elif args.filter_correct:
        filter_correct = True
    table = read_table(args.table)  # TableError: names the column and row
    try:
        if run_model is not None and "model" not in table.columns:
            table = table.assign(model=run_model)
        report = analyze_following(
            table,
            filter_correct=filter_correct,
            conflict_group=args.group,
            confidence=args.confidence,
            cluster=None if args.no_cluster else args.cluster,
            **options,
        )
    except ValueError as err:  # the table does not fit the options (--group, --cluster, ...)
        raise cli.ModprobeError(f"{args.table}: {err}") from None
    if run:
        used = ", ".join(f"{k}={options.get(k, run[k])}" for k in run if k in options)
        print(f"note: options of the run's manifest.json used as defaults ({used})",
              file=sys.stderr)
    lines = report.summary_lines()
    if args.out is not None:
        files = write_figures(report, args.out)
        write_bytes(args.out / "summary.txt", ("\n".join(lines) + "\n").encode("utf-8"))
        write_json(args.out / "summary.json", report_summary(report))
        print(f"figures: {', '.join(str(f) for f in files)}; summary.json, summary.txt",
              file=sys.stderr)
    print("\n".join(lines))
    return cli.EXIT_OK

