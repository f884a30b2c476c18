"""Checks of user input that the library and the command line share.

:func:`check_out` (an output folder), :func:`check_device` (a device that exists here),
:func:`check_dtype` (a dtype name, :data:`DTYPES`). Each raises a
:class:`~modprobe.errors.ModprobeError` naming the option and the fix, and writes nothing.
Torch is imported only inside :func:`check_device`. The command line re-exports them
from :mod:`modprobe.cli`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from modprobe.errors import ModprobeError

__all__ = ["DTYPES", "check_device", "check_dtype", "check_out"]

#: Model dtypes by name (torch attribute names; ``auto``: the checkpoint's own).
DTYPES: dict[str, str] = {
    "auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16",
    "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
}


def check_dtype(dtype: str, option: str = "--dtype") -> str:
    """The canonical dtype name (``"bf16"`` -> ``"bfloat16"``).

    Args:
        dtype: A name of :data:`DTYPES`.
        option: The option name used in messages.

    Returns:
        The torch attribute name (``"bfloat16"``) or ``"auto"``.

    Raises:
        ModprobeError: ``dtype`` is not a known name.
    """
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
