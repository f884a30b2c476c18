"""Redraw the sabotage figures from a report folder of ``modprobe sabotage``.

    python figures/sabotage.py REPORT [--out DIR]

The figures are drawn by :mod:`modprobe.figures.sabotage` (importable from an installed
package); this script only runs its ``main``.
"""

import sys

from modprobe.figures.sabotage import main

if __name__ == "__main__":
    sys.exit(main())
