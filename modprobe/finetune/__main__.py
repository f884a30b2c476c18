"""``python -m modprobe.finetune`` (and ``accelerate launch -m modprobe.finetune``): the same
as ``modprobe finetune`` (see :mod:`modprobe.commands.finetune`)."""

import sys

from modprobe.commands.finetune import build_parser, config_from_args, main

__all__ = ["build_parser", "config_from_args", "main"]

if __name__ == "__main__":
    sys.exit(main())
