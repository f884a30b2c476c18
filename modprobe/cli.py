"""What every modprobe command line shares: error handling, exit codes, common options.

A command is a function ``main(argv) -> int`` that parses its arguments, validates every
one of them (and every input file) before it writes anything, then works. Decorate it
with :func:`entry_point`, and expected failures end in one line on stderr naming the
file or option and the fix, with exit code 2; a bug ends in one line too (exit 1), and
``--debug`` anywhere on the command line shows the traceback::

    import argparse
    from modprobe import cli

    def build_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="python -m modprobe.thing", epilog=cli.EPILOG)
        parser.add_argument("--out", required=True)
        parser.add_argument("--overwrite", action="store_true")
        parser.add_argument("--steps", type=cli.positive_int, default=100)
        parser.add_argument("--device", default=None)
        parser.add_argument("--dtype", type=cli.dtype_name, default="auto")
        return parser

    @cli.entry_point
    def main(argv: list[str] | None = None) -> int:
        args = build_parser().parse_args(argv)
        out = cli.check_out(args.out, overwrite=args.overwrite)   # writes nothing
        device = cli.check_device(args.device)                     # "cuda:0", "cpu", ...
        ...                                                        # raise ModprobeError("...")
        return cli.EXIT_OK

    if __name__ == "__main__":
        sys.exit(main())

The public API, all of it:

- :class:`ModprobeError`: raise it (or a subclass: ``DatasetError``, ``TableError``,
  ``StudyError``, ``AdapterError``, ``ModelNotFoundError``, ``ModelLoadError``,
  ``CandidateError`` all are) with a message that names the file, field or option and
  says what to do. A ``ValueError`` is a bug unless you turn it into one of these.
- :func:`entry_point` (decorator) and :func:`run` (``run(main, argv)``): turn exceptions
  into exit codes. Expected: ``ModprobeError``, ``OSError`` (disk full, permissions,
  missing or unreadable files), ``MemoryError`` and torch's out-of-memory errors.
- Exit codes :data:`EXIT_OK` (0), :data:`EXIT_BUG` (1, an internal error: please report
  it with the ``--debug`` traceback), :data:`EXIT_BAD_INPUT` (2: bad input or an
  environment problem, nothing half-written), :data:`EXIT_INTERRUPTED` (130, Ctrl-C:
  finished work is kept); :data:`EPILOG` says so in ``--help``.
- :func:`describe`: the one line for an exception (for commands that add a hint, e.g.
  ``--resume``, to an ``OSError`` met mid-run).
- argparse types: :func:`positive_int`, :func:`nonnegative_int`, :func:`positive_float`,
  :func:`nonnegative_float`, :func:`probability`, :func:`dtype_name`.
- Checks that raise ``ModprobeError``: :func:`check_out` (an output folder: a folder,
  writable, empty unless ``--overwrite`` / ``--resume``), :func:`check_device` (the
  device exists on this machine), :func:`check_dtype`; :data:`DTYPES` names the dtypes.

The checks live in :mod:`modprobe.checks` (the library uses them too, and never imports
this module); they are re-exported here. Run folders (chunked, resumable, with data and model fingerprints) have their own shared
checks in :mod:`modprobe.study.runfolder` (``check_run_folder``, ``prepare_run_folder``).

This module imports neither torch nor pandas at import time, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from modprobe.checks import DTYPES, check_device, check_dtype, check_out
from modprobe.errors import ModprobeError, _first_line, describe

__all__ = [
    "DTYPES", "EPILOG", "EXIT_BAD_INPUT", "EXIT_BUG", "EXIT_INTERRUPTED", "EXIT_OK",
    "ModprobeError", "check_device", "check_dtype", "check_out", "describe", "dtype_name",
    "entry_point", "nonnegative_float", "nonnegative_int", "positive_float", "positive_int",
    "probability", "run", "share",
]

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: For ``argparse.ArgumentParser(epilog=...)``: the exit codes and ``--debug``.
EPILOG = ("exit codes: 0 done; 2 bad input or environment problem (one line says what and "
          "how to fix it; nothing half-written); 1 internal error (a bug: rerun with --debug "
          "for the traceback and report it); 130 interrupted (finished work is kept). "
          "--debug anywhere shows tracebacks.")

#: Detail lines of a multi-line message (a dataset's error list) printed under the first.
MAX_DETAIL_LINES = 20


# --------------------------------------------------------------------------- running
def run(main: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None,
        ) -> int:
    """Call ``main(argv)`` and turn its outcome into an exit code (see the module doc).

    ``--debug`` is taken out of ``argv`` (any position before a ``--``) and makes every
    error print its traceback.

    Args:
        main: The command, ``main(argv) -> exit code`` (None means 0).
        argv: Its arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 done, 1 bug, 2 bad input, 130 interrupted.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:cut] or os.environ.get("MODPROBE_DEBUG", "") not in ("", "0")
    args = [a for a in args[:cut] if a != "--debug"] + args[cut:]
    try:
        code = main(args)
    except SystemExit as stop:  # argparse: --help (0) and usage errors (2)
        code = stop.code
        if code is None:
            return EXIT_OK
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            return EXIT_BAD_INPUT
        return code
    except KeyboardInterrupt:
        print("\ninterrupted; files finished so far are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one place that decides what users see
        if debug:
            traceback.print_exc()
        if _expected(err):
            _print_error(describe(err))
            return EXIT_BAD_INPUT
        _print_error(f"internal error ({type(err).__name__}: {_first_line(err)}); this is a "
                     "bug in modprobe: rerun with --debug for the traceback and report it")
        return EXIT_BUG
    return EXIT_OK if code is None else int(code)


def entry_point(main: Callable[[list[str] | None], int | None]) -> Callable[..., int]:
    """Decorator: ``main(argv=None) -> int`` that never raises (see :func:`run`)."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None) -> int:
        return run(main, argv)

    return wrapped


def _expected(err: BaseException) -> bool:
    if isinstance(err, (ModprobeError, OSError, MemoryError)):
        return True
    # torch.cuda.OutOfMemoryError / torch.OutOfMemoryError, without importing torch
    return type(err).__name__ == "OutOfMemoryError" and type(err).__module__.startswith("torch")


def _print_error(message: str) -> None:
    lines = message.strip().splitlines() or ["(no message)"]
    detail = lines[1:1 + MAX_DETAIL_LINES]
    more = len(lines) - 1 - len(detail)
    print(f"error: {lines[0]}", file=sys.stderr)
    for line in detail:
        print(line, file=sys.stderr)
    if more > 0:
        print(f"  ... and {more} more lines", file=sys.stderr)


# --------------------------------------------------------------------------- argparse types
def _number(kind: type, test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not test(value):  # NaN fails every test (comparisons with NaN are false)
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


#: argparse type: an integer >= 1 (``--steps``, ``--groups``, ``--bootstrap``, ...).
positive_int = _number(int, lambda v: v >= 1, "a positive integer (1 or more)")
#: argparse type: an integer >= 0 (``--seed``).
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
#: argparse type: a finite float > 0 (``--lr``).
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
#: argparse type: a finite float >= 0 (``--entropy-floor``).
nonnegative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
#: argparse type: a float strictly between 0 and 1 (``--confidence``).
probability = _number(float, lambda v: 0 < v < 1, "a number strictly between 0 and 1")
#: argparse type: a float from 0 to 1, both included (``--partner-share``).
share = _number(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def dtype_name(text: str) -> str:
    """An argparse type: a model dtype name (see :data:`DTYPES`)."""
    try:
        return check_dtype(text)
    except ModprobeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
