"""``python -m modprobe.sabotage``: the same as ``modprobe sabotage``.

See :mod:`modprobe.commands.sabotage`.
"""

import sys

from modprobe.commands.sabotage import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
