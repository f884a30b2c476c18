"""``python -m modprobe.layers``: the same as ``modprobe study``.

See :mod:`modprobe.commands.study`.
"""

import sys

from modprobe.commands.study import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
