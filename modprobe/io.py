"""Crash-safe file output: every file modprobe writes appears whole or not at all.

Writers go to a temporary file in the destination folder and ``os.replace`` it into
place, so an interrupted run never leaves a truncated table behind; a resumed run can
trust every file it finds.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None],
                 mode: str = "w") -> None:
    """Open a temporary file, let ``write`` fill it, then move it to ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path``, atomically."""
    atomic_write(path, lambda f: f.write(data), mode="wb")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"))


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV (floats round-trip exactly), atomically."""
    atomic_write(path, lambda f: frame.to_csv(f, index=False))


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a numeric array as ``.npy`` (read back with ``allow_pickle=False``), atomically."""
    if array.dtype == object:
        raise TypeError("refusing to write an object array: it would need pickle to read back")
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), mode="wb")


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.npy`` file without ever unpickling."""
    return np.load(path, allow_pickle=False)
