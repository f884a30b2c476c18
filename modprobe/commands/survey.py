"""``modprobe survey [MODEL_TYPE ...]``: which image-text-to-text families modprobe adapts.

See :mod:`modprobe.testing.survey`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options


def build_parser(prog: str = "modprobe survey") -> argparse.ArgumentParser:
    """The parser of ``modprobe survey``."""
    parser = options.new_parser(
        prog, "Which image-text-to-text families modprobe adapts (meta device, no "
              "weights): a markdown table.")
    parser.add_argument("model_types", nargs="*",
                        help="model types to check (default: transformers' whole mapping)")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Print the survey table; returns the exit code."""
    args = build_parser().parse_args(argv)
    from modprobe.testing.survey import markdown_table
    from modprobe.testing.survey import survey as run_survey

    print(markdown_table(run_survey(args.model_types or None)))
    return cli.EXIT_OK
