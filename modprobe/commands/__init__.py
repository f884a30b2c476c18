"""The ``modprobe`` command: one entry point, a subcommand per task.

``modprobe study ...``, ``modprobe following ...`` and so on; ``modprobe --help`` lists
them. This package is the command-line layer: it sits on top of the library and nothing
in the library imports it. Each subcommand is a module here with ``build_parser(prog)``
and ``main(argv) -> int``; the module is imported only when its subcommand runs, and it
imports torch, pandas and the analyses only inside ``main``, so every ``--help`` is fast.

Adding a subcommand is one line in :data:`COMMANDS` (name, module, one-line help).
The older forms (``python -m modprobe.layers``, ``python -m modprobe.following``, ...)
are thin shims over these modules.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from modprobe import __version__, cli
from modprobe.commands.options import HelpFormatter

#: Subcommand name -> (module under ``modprobe.commands``, one-line help), in help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "study": ("study", "run a modality-following study on a model"),
    "following": ("following", "modality-following analysis of a prediction table"),
    "interference": ("interference", "perturb the irrelevant modality (a model or a table)"),
    "sabotage": ("sabotage", "each modality as an agent: sabotage, fusion, calibration"),
    "finetune": ("finetune", "fine-tune a model to use the relevant modality"),
    "finetune-demo": ("finetune_demo", "the organism fine-tuning demonstration"),
    "mma": ("mma", "audio-visual conflicts: MMA-Bench's conditions on a model"),
    "data": ("data", "generate and validate datasets and interference tasks"),
    "organism": ("organism", "train the bundled model organism"),
    "tiny": ("tiny", "write a tiny random-weight model of a family (tests)"),
    "survey": ("survey", "which image-text-to-text families modprobe adapts"),
    "bench": ("bench", "benchmarks: capture and fine-tuning step cost"),
    "calibration": ("calibration", "coverage of the balance-point interval on planted data"),
    "coverage-table": ("coverage_table", "the coverage tables of docs/science.md"),
}


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name`` (imported now)."""
    return importlib.import_module(f"modprobe.commands.{COMMANDS[name][0]}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: lists the subcommands (their options live in their modules)."""
    parser = argparse.ArgumentParser(
        prog="modprobe", formatter_class=HelpFormatter, epilog=cli.EPILOG,
        description="How multimodal language models follow (or ignore) each modality. "
                    "'modprobe COMMAND --help' shows a command's options.")
    parser.add_argument("--version", action="version", version=f"modprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_line) in COMMANDS.items():
        sub.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``modprobe COMMAND [options]``; returns the exit code (see ``modprobe --help``).

    Args:
        argv: The arguments after ``modprobe`` (default: ``sys.argv[1:]``).

    Returns:
        The subcommand's exit code: 0 done, 1 bug, 2 bad input, 130 interrupted.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in args if not a.startswith("-")), None)
    if name in COMMANDS:
        rest = args[:args.index(name)] + args[args.index(name) + 1:]
        return command_module(name).main(rest)
    return cli.run(lambda a: build_parser().parse_args(a) and cli.EXIT_OK, args)
