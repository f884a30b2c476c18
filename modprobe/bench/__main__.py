"""``python -m modprobe.bench``: the same as ``modprobe bench``.

See :mod:`modprobe.commands.bench`.
"""

import sys

from modprobe.commands.bench import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
