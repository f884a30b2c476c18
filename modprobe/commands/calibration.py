"""``modprobe calibration``: coverage of the balance-point interval on planted data.

See :func:`modprobe.analysis.following.calibration.coverage_study`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options


def build_parser(prog: str = "modprobe calibration") -> argparse.ArgumentParser:
    """The parser of ``modprobe calibration``."""
    parser = options.new_parser(
        prog, "Coverage of the balance-point bootstrap interval on planted data.")
    parser.add_argument("--datasets", type=cli.positive_int, default=200,
                        help="planted datasets")
    parser.add_argument("--items", type=cli.positive_int, default=500, help="items per dataset")
    options.add_bootstrap(parser, default=400)
    parser.add_argument("--balance-point", type=float, default=-0.3,
                        help="the planted balance point")
    parser.add_argument("--slope", type=float, default=-4.0, help="the planted logistic slope")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted data")
    parser.add_argument("--clusters", type=cli.positive_int, default=None,
                        help="clusters per dataset (items share a logit shift within one)")
    parser.add_argument("--cluster-sd", type=cli.nonnegative_float, default=1.0,
                        help="standard deviation of the clusters' logit shifts")
    parser.add_argument("--unit", choices=("item", "cluster"), default="item",
                        help="what the bootstrap resamples")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.unit == "cluster" and not args.clusters:
        parser.error("--unit cluster needs --clusters")
    from modprobe.analysis.following.calibration import coverage_study

    result = coverage_study(
        n_datasets=args.datasets, n_items=args.items, n_bootstrap=args.bootstrap,
        true_balance_point=args.balance_point, slope=args.slope, seed=args.seed,
        n_clusters=args.clusters, cluster_sd=args.cluster_sd if args.clusters else 0.0,
        unit=args.unit)
    print(result.summary())
    return cli.EXIT_OK
