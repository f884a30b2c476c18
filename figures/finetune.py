"""The before/after figures of docs/finetune.md, from the demonstration's run folders.

    python figures/finetune.py runs/finetune-demo [--out docs/figures]

The figures are drawn by :mod:`modprobe.figures.finetune` (importable from an installed
package); this script only runs its ``main``.
"""

import sys

from modprobe.figures.finetune import main

if __name__ == "__main__":
    sys.exit(main())
