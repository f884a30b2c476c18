"""``python -m modprobe.following``: the same as ``modprobe following``.

See :mod:`modprobe.commands.following`.
"""

import sys

from modprobe.commands.following import build_parser, main, report_summary, write_figures

__all__ = ["build_parser", "main", "report_summary", "write_figures"]

if __name__ == "__main__":
    sys.exit(main())
