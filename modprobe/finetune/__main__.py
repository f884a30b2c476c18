"""``python -m modprobe.finetune``: the same as ``modprobe finetune``.

See :mod:`modprobe.commands.finetune`.

``accelerate launch -m modprobe.finetune`` runs it on several GPUs.
"""

import sys

from modprobe.commands.finetune import build_parser, config_from_args, main

__all__ = ["build_parser", "config_from_args", "main"]

if __name__ == "__main__":
    sys.exit(main())
