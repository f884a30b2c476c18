"""``python -m modprobe.mma``: the same as ``modprobe mma``.

See :mod:`modprobe.commands.mma`.
"""

import sys

from modprobe.commands.mma import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
