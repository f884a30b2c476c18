"""``modprobe tiny FAMILY --out DIR``: write a tiny random-weight test model.

See :mod:`modprobe.testing.tiny`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options

#: ``modprobe.testing.tiny.FAMILIES`` and its decoder layers (a test checks they agree).
FAMILIES: tuple[str, ...] = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "instructblip")
LAYERS = 3


def build_parser(prog: str = "modprobe tiny") -> argparse.ArgumentParser:
    """The parser of ``modprobe tiny``."""
    parser = options.new_parser(
        prog, "Write a tiny random-weight model of a family (model + processor); no "
              "network needed.")
    parser.add_argument("family", choices=FAMILIES, help="model family")
    options.add_out(parser, "folder to write (created if needed; must be empty)",
                    required=True,
                    overwrite="write into a non-empty --out, replacing the model files there")
    options.add_seed(parser, "seed of the random weights")
    parser.add_argument("--layers", type=cli.positive_int, default=LAYERS,
                        help="language-model decoder layers")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Build the requested tiny model; returns the exit code."""
    args = build_parser().parse_args(argv)
    out = cli.check_out(args.out, overwrite=args.overwrite, what="model")
    from modprobe.testing.tiny import build_tiny

    out = build_tiny(args.family, out, seed=args.seed, num_hidden_layers=args.layers)
    print(f"wrote a tiny {args.family} model to {out}; load it with modprobe.load({str(out)!r})")
    return cli.EXIT_OK
