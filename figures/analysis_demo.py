"""Generate the figures of docs/analyses.md from simulated data with planted truths.

    python figures/analysis_demo.py [--out docs/figures] [--bootstrap 1000]

The figures are drawn by :mod:`modprobe.figures.analysis_demo` (importable from an installed
package); this script only runs its ``main``.
"""

import sys

from modprobe.figures.analysis_demo import main

if __name__ == "__main__":
    sys.exit(main())
