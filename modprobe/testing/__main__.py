"""``python -m modprobe.testing tiny FAMILY --out DIR [--seed S]``: write a tiny test model."""

from __future__ import annotations

import argparse
import sys

from modprobe.testing.tiny import FAMILIES, TEXT_DEFAULTS


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and build the requested tiny model."""
    parser = argparse.ArgumentParser(
        prog="python -m modprobe.testing",
        description="Test support for modprobe (no network needed).")
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser(
        "tiny", help="write a tiny random-weight model of a family (model + processor)")
    tiny.add_argument("family", choices=FAMILIES, help="model family")
    tiny.add_argument("--out", required=True, help="folder to write (created if needed)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    tiny.add_argument("--layers", type=int, default=TEXT_DEFAULTS["num_hidden_layers"],
                      help="language-model decoder layers")
    args = parser.parse_args(argv)

    from modprobe.testing.tiny import build_tiny

    out = build_tiny(args.family, args.out, seed=args.seed, num_hidden_layers=args.layers)
    print(f"wrote a tiny {args.family} model to {out}; load it with modprobe.load({str(out)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
