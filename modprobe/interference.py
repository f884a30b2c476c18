"""``python -m modprobe.interference``: the same as ``modprobe interference``.

``python -m modprobe.interference compare RUN_A RUN_B`` is ``modprobe interference
compare RUN_A RUN_B``.

See :mod:`modprobe.commands.interference`.
"""

import sys

from modprobe.commands.interference import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
