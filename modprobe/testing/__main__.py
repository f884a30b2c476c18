"""``python -m modprobe.testing tiny FAMILY --out DIR [--seed S] [--overwrite]``: write a tiny
test model.

``python -m modprobe.testing survey [MODEL_TYPE ...]``: which image-text-to-text families
modprobe adapts (see :mod:`modprobe.testing.survey`).
"""

from __future__ import annotations

import argparse
import sys

from modprobe import cli
from modprobe.testing.tiny import FAMILIES, TEXT_DEFAULTS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modprobe.testing",
        description="Test support for modprobe (no network needed).", epilog=cli.EPILOG)
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser(
        "tiny", help="write a tiny random-weight model of a family (model + processor)",
        epilog=cli.EPILOG)
    tiny.add_argument("family", choices=FAMILIES, help="model family")
    tiny.add_argument("--out", required=True,
                      help="folder to write (created if needed; must be empty)")
    tiny.add_argument("--overwrite", action="store_true",
                      help="write into a non-empty --out, replacing the model files there")
    tiny.add_argument("--seed", type=cli.nonnegative_int, default=0,
                      help="seed of the random weights")
    tiny.add_argument("--layers", type=cli.positive_int,
                      default=TEXT_DEFAULTS["num_hidden_layers"],
                      help="language-model decoder layers")
    survey = commands.add_parser(
        "survey", help="which image-text-to-text families modprobe adapts (meta device, "
                       "no weights): a markdown table")
    survey.add_argument("model_types", nargs="*",
                        help="model types to check (default: transformers' whole mapping)")
    return parser


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    """Parse the command line and build the requested tiny model (or run the survey)."""
    args = build_parser().parse_args(argv)
    if args.command == "survey":
        from modprobe.testing.survey import markdown_table
        from modprobe.testing.survey import survey as run_survey

        print(markdown_table(run_survey(args.model_types or None)))
        return cli.EXIT_OK
    out = cli.check_out(args.out, overwrite=args.overwrite, what="model")

    from modprobe.testing.tiny import build_tiny

    out = build_tiny(args.family, out, seed=args.seed, num_hidden_layers=args.layers)
    print(f"wrote a tiny {args.family} model to {out}; load it with modprobe.load({str(out)!r})")
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
