"""Redraw the interference radar and flip-rate figures from one or more finished runs.

    python figures/interference.py runs/base runs/finetuned --out docs/figures/interference
    python figures/interference.py runs/base runs/finetuned --names base fine-tuned

The figures are drawn by :mod:`modprobe.figures.interference` (importable from an installed
package); this script only runs its ``main``.
"""

import sys

from modprobe.figures.interference import main

if __name__ == "__main__":
    sys.exit(main())
