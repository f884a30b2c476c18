"""``python -m modprobe.organism``: the same as ``modprobe organism``.

See :mod:`modprobe.commands.organism`.
"""

import sys

from modprobe.commands.organism import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
