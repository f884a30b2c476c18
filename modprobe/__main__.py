"""``python -m modprobe``: the same as the ``modprobe`` command."""

import sys

from modprobe.commands import main

if __name__ == "__main__":
    sys.exit(main())
