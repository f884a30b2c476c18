"""``python -m modprobe.data``: the same as ``modprobe data``.

See :mod:`modprobe.commands.data`.
"""

import sys

from modprobe.commands.data import build_parser, main, parse_tiers

__all__ = ["build_parser", "main", "parse_tiers"]

if __name__ == "__main__":
    sys.exit(main())
