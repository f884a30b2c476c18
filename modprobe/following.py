"""Bring your own predictions: the section-1 analysis of any model's outputs.

    python -m modprobe.following TABLE [--out DIR] [--filter-correct] [--axis rel|abs]
        [--entropy-floor F] [--bootstrap N] [--seed S] [--group G] [--confidence C]

TABLE is a CSV or Parquet file with columns ``h_text, h_vision, y_text, y_vision,
y_multi`` (optional ``model, group, correct_text, correct_vision``; see
`modprobe.analysis.table`). Works for closed API models too: the entropies can come
from returned log-probabilities (`modprobe.analysis.entropy`). For every model it
prints TFR, the monotonicity test, the median-entropy split, and as its last line
``balance_point=<x> ci=[<lo>, <hi>]`` (or ``balance_point=none (<reason>)``). With
``--out`` it writes ``following_curve.png``, ``following_split.png``,
``uncertainty_distribution.png`` and ``summary.txt``. Invalid tables exit with code 2
and a message naming the column and row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modprobe import cli
from modprobe.analysis.report import FollowingReport, analyze_following
from modprobe.analysis.table import read_table
from modprobe.io import atomic_path, write_bytes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modprobe.following",
        description="Modality-following analysis (TFR, law, balance point) of a prediction table.",
        epilog=cli.EPILOG,
    )
    parser.add_argument(
        "table",
        help="CSV or Parquet file with h_text, h_vision, y_text, "
        "y_vision, y_multi (optional model, group, correct_text, correct_vision)",
    )
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for figures and summary.txt (must be empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out, replacing the files there")
    parser.add_argument(
        "--filter-correct",
        action="store_true",
        help="keep only items whose text-only and vision-only answers are correct",
    )
    parser.add_argument(
        "--axis",
        choices=("rel", "abs"),
        default="rel",
        help="x axis: dH_rel (rel, default) or H_t - H_v in nats (abs)",
    )
    parser.add_argument(
        "--entropy-floor",
        type=cli.nonnegative_float,
        default=0.0,
        help="floor (nats) applied to both entropies before the axis",
    )
    parser.add_argument("--bootstrap", type=cli.positive_int, default=1000,
                        help="bootstrap replicates")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--group",
        default="conflict",
        help="with a group column, the group to analyse (default: conflict)",
    )
    parser.add_argument("--confidence", type=cli.probability, default=0.95,
                        help="interval level")
    parser.add_argument(
        "--cluster",
        default=None,
        metavar="COLUMN",
        help="column of cluster labels: bootstrap whole clusters of correlated items (e.g. "
        "items generated from one scene) instead of single items",
    )
    return parser


def write_figures(report: FollowingReport, out: Path) -> list[Path]:
    """Write the CLI's figures for ``report`` into ``out``; returns the files."""
    # Imported here: plotting is only needed when --out is given.
    from modprobe.analysis.plots import plot_following_curve, plot_uncertainty_distribution

    out.mkdir(parents=True, exist_ok=True)
    written = []
    laws = report.laws
    x_label = r"$\Delta H_{rel}$" if report.axis == "rel" else r"$H_t - H_v$ (nats)"
    if report.entropy_floor > 0:
        x_label += f", entropy floor {report.entropy_floor:g}"
    if laws:
        fig = plot_following_curve(laws, x_label=x_label, title="Modality following")
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
    _save(fig, written[-1])
    return written


def _save(fig: object, path: Path) -> None:
    """Save a figure atomically (a kill never leaves half a PNG)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")  # type: ignore[attr-defined]


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 invalid input, see ``--help``)."""
    args = _parser().parse_args(argv)
    if args.out is not None:
        args.out = cli.check_out(args.out, overwrite=args.overwrite, what="figures")
    table = read_table(args.table)  # TableError: names the column and row
    try:
        report = analyze_following(
            table,
            axis=args.axis,
            entropy_floor=args.entropy_floor,
            filter_correct=args.filter_correct,
            conflict_group=args.group,
            n_bootstrap=args.bootstrap,
            confidence=args.confidence,
            seed=args.seed,
            cluster=args.cluster,
        )
    except ValueError as err:  # the table does not fit the options (--group, --cluster, ...)
        raise cli.ModprobeError(f"{args.table}: {err}") from None
    lines = report.summary_lines()
    if args.out is not None:
        files = write_figures(report, args.out)
        write_bytes(args.out / "summary.txt", ("\n".join(lines) + "\n").encode("utf-8"))
        print(f"figures: {', '.join(str(f) for f in files)}", file=sys.stderr)
    print("\n".join(lines))
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
