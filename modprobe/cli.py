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

Run folders (chunked, resumable, with data and model fingerprints) have their own shared
checks in :mod:`modprobe.study.runfolder` (``check_run_folder``, ``prepare_run_folder``).

This module imports neither torch nor pandas at import time, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modprobe.errors import ModprobeError

__all__ = [
    "DTYPES", "EPILOG", "EXIT_BAD_INPUT", "EXIT_BUG", "EXIT_INTERRUPTED", "EXIT_OK",
    "ModprobeError", "check_device", "check_dtype", "check_out", "describe", "dtype_name",
    "entry_point", "nonnegative_float", "nonnegative_int", "positive_float", "positive_int",
    "probability", "run",
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

#: Model dtypes by name (torch attribute names; ``auto``: the checkpoint's own).
DTYPES: dict[str, str] = {
    "auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16",
    "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
}

#: Detail lines of a multi-line message (a dataset's error list) printed under the first.
MAX_DETAIL_LINES = 20


# --------------------------------------------------------------------------- running
def run(main: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None,
        ) -> int:
    """Call ``main(argv)`` and turn its outcome into an exit code (see the module doc).

    ``--debug`` is taken out of ``argv`` (any position before a ``--``) and makes every
    error print its traceback.
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_OS_FIXES = {
    errno.ENOSPC: "no space left on the device; free space or choose another folder",
    errno.EDQUOT: "disk quota exceeded; free space or choose another folder",
    errno.EACCES: "permission denied; choose a location you can write, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a location you can write",
    errno.EROFS: "read-only file system; choose a writable location",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EISDIR: "is a folder where a file was expected; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
}


def describe(err: BaseException) -> str:
    """The message a user sees for ``err``: names the file and the fix, no traceback.

    ``ModprobeError`` messages are already written for users and pass unchanged;
    ``OSError`` gets its path and a fix by error number; out-of-memory errors suggest a
    smaller batch.
    """
    if isinstance(err, ModprobeError):
        return str(err).strip() or type(err).__name__
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else None
        fix = _OS_FIXES.get(err.errno or -1) or err.strerror or _first_line(err)
        if where is None:
            # PIL's UnidentifiedImageError and friends put the path in the message only.
            return f"{_first_line(err)} ({fix})" if err.errno in _OS_FIXES else _first_line(err)
        return f"{where}: {fix}"
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return (f"out of memory ({_first_line(err)}); use a smaller --batch-size, a smaller "
                "--dtype (bfloat16), or a machine with more memory")
    return _first_line(err)


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


def dtype_name(text: str) -> str:
    """argparse type: a model dtype name (see :data:`DTYPES`)."""
    try:
        return check_dtype(text)
    except ModprobeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# --------------------------------------------------------------------------- checks
def check_dtype(dtype: str, option: str = "--dtype") -> str:
    """The canonical dtype name (``"bf16"`` -> ``"bfloat16"``), or a ModprobeError."""
    if dtype not in DTYPES:
        raise ModprobeError(f"{option} {dtype!r} is not a dtype; use one of "
                            f"{', '.join(DTYPES)}")
    return DTYPES[dtype]


def check_device(device: Any = None, option: str = "--device") -> str:
    """The device to use, checked against this machine.

    Args:
        device: ``None`` or ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ``"mps"``, or a ``torch.device``.
        option: The option name used in messages.

    Returns:
        The device as a string torch accepts (``"cuda"``, ``"cuda:1"``, ``"cpu"``).

    Raises:
        ModprobeError: an unknown device name, no GPU visible, or a GPU index that does
            not exist; the message says what is there instead.
    """
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModprobeError(f"{option} {device!r} is not a device; use cpu, cuda, cuda:N "
                            "or mps (default: cuda when available)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ModprobeError(f"{option} {device}: no CUDA GPU is visible to torch on this "
                                "machine; use --device cpu, or check the driver and "
                                "CUDA_VISIBLE_DEVICES")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ModprobeError(f"{option} {device}: this machine has {count} GPU(s), "
                                f"cuda:0..cuda:{count - 1}")
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ModprobeError(f"{option} {device}: Apple MPS is not available here; "
                                "use --device cpu")
    elif parsed.type != "cpu":
        raise ModprobeError(f"{option} {device!r}: modprobe runs on cpu, cuda or mps")
    return str(parsed)


def check_out(path: str | os.PathLike[str], *, overwrite: bool | None = None,
              resume: bool | None = None, option: str = "--out",
              what: str = "output") -> Path:
    """Check an output folder before any work: a folder (or creatable), writable, empty.

    Writes nothing that stays (a probe file is created and removed to test writing).

    Args:
        path: The folder.
        overwrite: The command's ``--overwrite`` flag, or None when it has none. When true,
            a non-empty folder is accepted (the command replaces its own files in it).
        resume: The command's ``--resume`` flag, or None when it has none. When true, the
            folder must exist and hold something (the caller checks it is resumable).
        option: The option name for messages.
        what: What the folder holds, for messages (``"run"``, ``"model"``, ``"dataset"``).

    Returns:
        The path.

    Raises:
        ModprobeError: the path is a file, a parent is a file, it cannot be written, it
            is not empty without ``overwrite``/``resume``, or ``resume`` finds nothing.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ModprobeError(f"{option} {out} is a file, not a folder; choose a folder "
                            f"for the {what} (it is created if needed)")
    non_empty = out.is_dir() and any(out.iterdir())
    if resume:
        if not non_empty:
            raise ModprobeError(f"nothing to resume: {option} {out} holds no {what}; drop "
                                "--resume to start one")
    elif non_empty and not overwrite:
        ways = [f"choose another {option}"]
        if resume is not None:
            ways.append(f"pass --resume to continue the {what} in it")
        if overwrite is not None:
            ways.append(f"pass --overwrite to replace the {what} in it")
        raise ModprobeError(f"{option} {out} already exists and is not empty; modprobe never "
                            f"overwrites your files: {' or '.join(ways)}")
    _check_writable(out, option)
    return out


def _check_writable(out: Path, option: str) -> None:
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ModprobeError(f"{option} {out}: {existing} is a file, so no folder can be "
                            "created there; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".modprobe-write-test.", dir=existing)
    except OSError as err:
        raise ModprobeError(f"{option} {out}: cannot write in {existing} "
                            f"({err.strerror or err}); choose a folder you can write") from None
    os.close(fd)
    os.unlink(probe)
