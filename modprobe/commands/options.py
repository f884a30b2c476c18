"""The options every ``modprobe`` subcommand shares, declared once, and the one help style.

Each subcommand builds its parser with :func:`new_parser` (one formatter, the exit-code
epilog, ``--debug``) and adds the shared options with the ``add_*`` functions below, so
``--out``, ``--model``, ``--data``, ``--seed``, ``--bootstrap``, ``--device`` and
``--dtype`` read and behave the same everywhere. Nothing here imports torch, pandas or
the analysis modules: ``modprobe X --help`` must stay fast (the defaults that live in
those modules are repeated here as constants, and a test checks they agree).
:func:`run_and_report` is how the commands that run models end: the summary lines, the
run folder and its figures, or the ``--resume`` hint when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modprobe import cli

#: ``modprobe.stats.DEFAULT_RESAMPLES`` (a test checks they agree; stats imports scipy).
DEFAULT_RESAMPLES = 2000
#: Model aliases named in ``--model`` help (``modprobe.loading.ALIASES`` has them all).
MODEL_HELP = ("alias (organism, av-organism, llava, llava-next, qwen2-vl, qwen2.5-vl, instructblip), "
              "hub id, or local folder")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except ``None`` and ``False`` ones (the help says it).

    Descriptions and epilogs keep their line breaks (examples stay readable).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or not action.option_strings:
            return action.help or ""
        return super()._get_help_string(action) or ""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(HelpFormatter, self)._fill_text(part, width, indent)
                           for part in text.split("\n\n"))


def debug_parent() -> argparse.ArgumentParser:
    """The parent parser of every command: ``--debug`` (handled by :func:`modprobe.cli.run`)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: MODPROBE_DEBUG=1)")
    return parent


def new_parser(prog: str, description: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A command's parser in the one help style: defaults shown, exit codes in the epilog.

    Args:
        prog: The command as users type it (``"modprobe study"``).
        description: One paragraph on what the command does.
        **kwargs: More ``argparse.ArgumentParser`` arguments.

    Returns:
        The parser, with ``--debug`` (see :mod:`modprobe.cli`).
    """
    return argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=HelpFormatter, epilog=cli.EPILOG,
                                   parents=[debug_parent()], **kwargs)


def add_subparsers(parser: argparse.ArgumentParser, dest: str = "command") -> Any:
    """Subcommands (``modprobe data colors``) whose parsers share the help style.

    Args:
        parser: The command's parser.
        dest: The attribute that names the chosen subcommand.

    Returns:
        The object whose ``add_parser(name, help=...)`` makes one subcommand parser.
    """
    sub = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")
    make = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("epilog", cli.EPILOG)
        kwargs.setdefault("description", kwargs.get("help"))
        return make(name, parents=[debug_parent()], **kwargs)

    sub.add_parser = add_parser
    return sub


# --------------------------------------------------------------------------- shared options
def add_out(parser: Any, help: str, *, required: bool = False, path: bool = False,
            overwrite: str | None = None) -> None:
    """``--out`` (an output folder, checked by :func:`modprobe.cli.check_out`).

    Args:
        parser: Parser or argument group.
        help: What the folder holds and its default.
        required: Whether the command needs it.
        path: Parse it as a ``pathlib.Path`` (else a string).
        overwrite: Help of an ``--overwrite`` flag to add too (None: no such flag).
    """
    from pathlib import Path

    parser.add_argument("--out", required=required, default=None,
                        type=Path if path else str, help=help)
    if overwrite is not None:
        parser.add_argument("--overwrite", action="store_true", help=overwrite)


def add_model(parser: Any, default: str | None = "organism", help: str = MODEL_HELP) -> None:
    """``--model``: an alias, hub id or local folder (see :func:`modprobe.load`).

    Args:
        parser: Parser or argument group.
        default: The command's default model (None: the command decides).
        help: The option's help.
    """
    parser.add_argument("--model", default=default, help=help)


def add_data(parser: Any, help: str) -> None:
    """``--data``: an input dataset or task folder.

    Args:
        parser: Parser or argument group.
        help: What the folder holds and the default.
    """
    parser.add_argument("--data", default=None, help=help)


def add_seed(parser: Any, help: str = "seed", default: int = 0) -> None:
    """``--seed``: an integer >= 0.

    Args:
        parser: Parser or argument group.
        help: What the seed seeds.
        default: The default seed.
    """
    parser.add_argument("--seed", type=cli.nonnegative_int, default=default, help=help)


def add_data_seed(parser: Any, help: str = "seed of the generated data") -> None:
    """``--data-seed``: the seed of what a run generates (apart from the bootstrap's ``--seed``).

    Args:
        parser: Parser or argument group.
        help: What the seed seeds.
    """
    parser.add_argument("--data-seed", type=cli.nonnegative_int, default=0, help=help)


def add_table_format(parser: Any, alias: bool = False) -> None:
    """``--table-format``: Parquet (default) or CSV run tables, stored as ``table_format``.

    Args:
        parser: Parser or argument group.
        alias: Also accept ``--format`` (commands without an answer ``--format``).
    """
    names = ("--table-format", "--format") if alias else ("--table-format",)
    parser.add_argument(*names, dest="table_format", choices=("parquet", "csv"),
                        default="parquet",
                        help="format of the run's tables (both read back with "
                             "modprobe.load_run)")


def add_bootstrap(parser: Any, default: int | None = DEFAULT_RESAMPLES,
                  help: str = "bootstrap replicates") -> None:
    """``--bootstrap`` (alias ``--n-bootstrap``): bootstrap replicates, stored as ``bootstrap``.

    Args:
        parser: Parser or argument group.
        default: The default count (None: the command decides, e.g. from a run).
        help: The option's help.
    """
    parser.add_argument("--bootstrap", "--n-bootstrap", dest="bootstrap",
                        type=cli.positive_int, default=default, help=help)


def add_device(parser: Any, default: str | None = None, dtype: bool = True,
               help: str = "cpu, cuda, cuda:1 (default: cuda if available)") -> None:
    """``--device`` and ``--dtype`` (a name of :data:`modprobe.checks.DTYPES`).

    Args:
        parser: Parser or argument group.
        default: The default device (None: CUDA when available, else CPU).
        dtype: Also add ``--dtype``.
        help: The ``--device`` help.
    """
    parser.add_argument("--device", default=default, help=help)
    if dtype:
        parser.add_argument("--dtype", type=cli.dtype_name, default="auto",
                            help="auto, float32, bfloat16, float16")


def add_device_map(parser: Any) -> None:
    """``--device-map``: shard the model over devices (see :func:`modprobe.load`).

    Args:
        parser: Parser or argument group.
    """
    parser.add_argument("--device-map", default=None,
                        help="shard the model over devices instead of --device: auto, "
                             "balanced, balanced_low_0, sequential, or a JSON object of "
                             "module -> device (docs/scale.md)")


def add_run_flags(parser: Any, resume: str | None, figures: bool = True,
                  quiet: bool = True) -> None:
    """``--resume``, ``--no-figures`` and ``--quiet`` of the commands that run models.

    Args:
        parser: Parser or argument group.
        resume: Help of ``--resume`` (None: the command cannot resume).
        figures: Add ``--no-figures``.
        quiet: Add ``--quiet``.
    """
    if resume is not None:
        parser.add_argument("--resume", action="store_true", help=resume)
    if figures:
        parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


#: Help of ``--threads`` of the commands that train on the CPU.
THREADS_HELP = "torch CPU threads (results are deterministic per seed and thread count)"


def add_training(parser: Any, defaults: dict[str, Any], *, batch: str | None = None,
                 steps: str = "optimizer steps", lr: str = "peak learning rate",
                 threads: str | None = THREADS_HELP) -> None:
    """``--steps``, ``--batch-size``, ``--lr`` and ``--threads`` of the commands that train.

    Args:
        parser: Parser or argument group.
        defaults: The command's defaults (``steps``, ``batch_size``, ``learning_rate``,
            ``threads``).
        batch: Help of ``--batch-size`` (None: no such option).
        steps: Help of ``--steps``.
        lr: Help of ``--lr``.
        threads: Help of ``--threads`` (None: no such option).
    """
    parser.add_argument("--steps", type=cli.positive_int, default=defaults["steps"], help=steps)
    if batch is not None:
        parser.add_argument("--batch-size", type=cli.positive_int,
                            default=defaults["batch_size"], help=batch)
    parser.add_argument("--lr", type=cli.positive_float, default=defaults["learning_rate"],
                        help=lr)
    if threads is not None:
        parser.add_argument("--threads", type=cli.positive_int, default=defaults["threads"],
                            help=threads)


def run_and_report(run: Callable[[], Any], out: Path) -> int:
    """Run a resumable model run and print what it found (the commands that run models).

    Args:
        run: Starts the run and returns its result (None on a data-parallel rank other
            than 0, which prints nothing).
        out: The run folder, named when the run is interrupted.

    Returns:
        The exit code: 0 done, 130 interrupted (the finished chunks are kept).
    """
    try:
        result = run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished chunks are saved. Continue with the same command "
              f"plus --resume (run folder: {out})", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    if result is None:  # a data-parallel rank other than 0: rank 0 prints the results
        return cli.EXIT_OK
    print()
    for line in result.summary_lines():
        print(line)
    print(f"\nrun folder: {result.out}")
    for path in result.figures:
        print(f"figure: {path}")
    return cli.EXIT_OK
