"""``modprobe coverage-table``: the coverage tables of docs/science.md, from planted truths.

See :mod:`modprobe.analysis.following.coverage_table` (about 40 minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from modprobe import cli
from modprobe.commands import options
from modprobe.errors import ModprobeError


def build_parser(prog: str = "modprobe coverage-table") -> argparse.ArgumentParser:
    """The parser of ``modprobe coverage-table``."""
    parser = options.new_parser(prog, "Coverage tables of docs/science.md.")
    parser.add_argument("--datasets", type=cli.positive_int, default=50,
                        help="datasets per balance-point row (default: 50)")
    parser.add_argument("--cluster-datasets", type=cli.positive_int, default=1000,
                        help="datasets per few-clusters row (default: 1000)")
    parser.add_argument("--oscillation-datasets", type=cli.positive_int, default=400,
                        help="datasets per oscillation row (default: 400)")
    parser.add_argument("--logistic-datasets", type=cli.positive_int, default=400,
                        help="datasets per size of the 8-cluster logistic rows (default: 400)")
    parser.add_argument("--sizes", type=cli.positive_int, nargs="+", default=[500, 2000],
                        help="items per dataset of the balance-point rows")
    parser.add_argument("--logistic-sizes", type=cli.positive_int, nargs="+", default=[500],
                        help="items per dataset of the 8-cluster logistic rows (default: 500)")
    options.add_bootstrap(parser, default=400)
    options.add_seed(parser, "seed of the planted data")
    parser.add_argument("--few-clusters-only", action="store_true",
                        help="measure the few-clusters and oscillation tables only")
    parser.add_argument("--update", type=Path, metavar="FILE",
                        help="replace the generated block of FILE (docs/science.md) with "
                             "the tables, instead of printing them")
    return parser


def _tables(args: argparse.Namespace) -> list[str]:
    """The markdown of every table, each with the settings it was measured with."""
    from modprobe.analysis.following import coverage_table as table

    lines = [(f"*Few clusters* (`mean_interval` by declared kind, {args.cluster_datasets} "
             "datasets per row, 2,000 bootstrap replicates for continuous means):"), "",
             *table.cluster_rows(args.cluster_datasets, args.seed), "",
             (f"*Oscillation* (every interval `oscillation_report` prints, "
             f"{args.oscillation_datasets} datasets per row, 2,000 bootstrap replicates):"), "",
             *table.oscillation_rows(args.oscillation_datasets, args.seed)]
    if args.few_clusters_only:
        return lines
    return lines + [
        "", (f"*Balance points* ({args.datasets} datasets per row, {args.bootstrap} bootstrap "
        "replicates each):"), "",
        *table.balance_rows(args.datasets, args.sizes, args.bootstrap, args.seed), "",
        ("*Logistic balance point with 8 clusters* (2,000 bootstrap replicates, the "
        "default):"), "", *table.logistic_rows(args.logistic_datasets, args.logistic_sizes, args.seed)]


def _split(path: Path) -> tuple[str, str]:
    """The text of ``path`` before and after its generated block (markers kept)."""
    from modprobe.analysis.following.coverage_table import BEGIN, END

    if not path.is_file():
        raise ModprobeError(f"--update {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ModprobeError(f"--update {path}: needs one line {BEGIN} and, after it, one "
                            f"line {END} around the generated tables")
    head, rest = text.split(BEGIN)
    return head + BEGIN + "\n", END + rest.split(END)[1]


def _options_used(args: argparse.Namespace) -> str:
    """Every measuring option as given, so the recorded command line reproduces the run."""
    words = []
    for name, value in vars(args).items():
        if name in ("update", "debug") or value is None or value is False:
            continue
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words.append(f"{flag} {' '.join(map(str, value))}")
        else:
            words.append(f"{flag} {value}")
    return " ".join(words)


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Measure the tables and print them or update a file; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.update is not None:  # the file is checked before the long measurement
        _split(args.update)
    start = time.perf_counter()
    block = _tables(args)
    block += ["", (f"(`modprobe coverage-table {_options_used(args)}`, "
              f"{time.perf_counter() - start:.0f} s)")]
    if args.update is None:
        print("\n".join(block))
    else:
        from modprobe.io import atomic_write

        head, tail = _split(args.update)
        # Replaced only once the whole new text is written: a kill keeps the old file.
        atomic_write(args.update, lambda f: f.write(head + "\n".join(block) + "\n" + tail))
        print(f"updated {args.update}")
    return cli.EXIT_OK
