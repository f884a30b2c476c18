"""``python -m modprobe.testing tiny|survey``: the same as ``modprobe tiny`` / ``modprobe survey``.

See :mod:`modprobe.commands.tiny` and :mod:`modprobe.commands.survey`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from modprobe import cli


def main(argv: Sequence[str] | None = None) -> int:
    """``tiny ...`` or ``survey ...``; returns the exit code."""
    from modprobe.commands import survey, tiny

    args = list(sys.argv[1:] if argv is None else argv)
    commands = {"tiny": tiny.main, "survey": survey.main}
    if not args or args[0] not in commands:
        print("usage: python -m modprobe.testing {tiny,survey} ... (or: modprobe tiny, "
              "modprobe survey; --help for options)", file=sys.stderr)
        return cli.EXIT_OK if args[:1] in (["-h"], ["--help"]) else cli.EXIT_BAD_INPUT
    return commands[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
