"""``modprobe coverage-table``: the coverage tables of docs/science.md, from planted truths.

See :mod:`modprobe.analysis.following.coverage_table` (about 25 minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options


def build_parser(prog: str = "modprobe coverage-table") -> argparse.ArgumentParser:
    """The parser of ``modprobe coverage-table``."""
    parser = options.new_parser(prog, "Coverage tables of docs/science.md.")
    parser.add_argument("--datasets", type=cli.positive_int, default=60,
                        help="datasets per balance-point row")
    parser.add_argument("--cluster-datasets", type=cli.positive_int, default=2000,
                        help="datasets per few-clusters row")
    parser.add_argument("--sizes", type=cli.positive_int, nargs="+", default=[500, 2000],
                        help="items per dataset of the balance-point rows")
    options.add_bootstrap(parser, default=200)
    options.add_seed(parser, "seed of the planted data")
    parser.add_argument("--few-clusters-only", action="store_true",
                        help="print the few-clusters table only (a few minutes)")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables; returns the exit code."""
    args = build_parser().parse_args(argv)
    from modprobe.analysis.following.coverage_table import (
        balance_rows,
        cluster_rows,
        replicate_rows,
    )

    start = time.perf_counter()
    print(f"few clusters: mean_interval, {args.cluster_datasets} datasets per row, "
          "nominal 0.95")
    print("\n".join(cluster_rows(args.cluster_datasets, args.seed)), flush=True)
    if args.few_clusters_only:
        return cli.EXIT_OK
    print(f"\nbalance points: {args.datasets} datasets per row, {args.bootstrap} replicates, "
          "nominal 0.95")
    for row in balance_rows(args.datasets, args.sizes, args.bootstrap, args.seed):
        print(row, flush=True)
    print(f"\nlogistic balance point, 8 clusters, n = 500, {3 * args.datasets} datasets, by "
          "replicates")
    print("\n".join(replicate_rows(3 * args.datasets, args.seed)))
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return cli.EXIT_OK
