"""Crash-safe file output: every file modprobe writes appears whole or not at all.

Writers go to a temporary file in the destination folder and ``os.replace`` it into
place, so an interrupted run never leaves a truncated table behind; a resumed run can
trust every file it finds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


#: Temporary files of the atomic writers are named ``.modprobe-tmp.<name>.<random>.tmp``.
TMP_PREFIX = ".modprobe-tmp."
TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(folder: str | os.PathLike[str]) -> None:
    """Give every file under ``folder`` the user's default mode (umask), as ``open`` would.

    For files written by other libraries with a stricter mode (safetensors writes 0600).
    """
    mode = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode | (path.stat().st_mode & 0o111))


def remove_temporary_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the atomic writers' leftovers under ``folder`` (a killed run's half files).

    Returns:
        The files removed.
    """
    removed = []
    for path in Path(folder).rglob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX,
                               dir=path.parent)
    os.close(fd)
    # mkstemp makes the file 0600; the finished file gets the mode any other file of the
    # user gets (0644 under the usual umask), so colleagues on a shared machine can read it.
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None],
                 mode: str = "w") -> None:
    """Open a temporary file, let ``write`` fill it, then move it to ``path``.

    Args:
        path: The file to write; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        write: Called once with the open temporary file; if it raises, the
            temporary file is deleted and ``path`` is left as it was.
        mode: The ``open`` mode: ``"w"`` (text, UTF-8) or ``"wb"`` (bytes).
    """
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path``, atomically.

    Args:
        path: The file to write; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        data: The file's whole content.
    """
    atomic_write(path, lambda f: f.write(data), mode="wb")


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (JSON has neither) and numpy values as Python.

    Dicts (keys become strings), lists and tuples are converted recursively; other objects
    pass unchanged.
    """
    if isinstance(obj, dict):
        return {str(key): json_ready(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, valid JSON (NaN and infinities become null), atomically.

    Args:
        path: The file to write; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        obj: Anything :func:`json_ready` converts; keys are sorted, and objects JSON
            has no type for (paths, dates) are written as their ``str``.
    """
    text = json.dumps(json_ready(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write(path, lambda f: f.write(text + "\n"))


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV (floats round-trip exactly), atomically.

    Args:
        path: The file to write; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        frame: The table; its index is not written (read it back with
            :func:`read_csv`).
    """
    atomic_write(path, lambda f: frame.to_csv(f, index=False))


#: The formats run tables are written in, and their file suffixes.
TABLE_FORMATS: dict[str, str] = {"parquet": ".parquet", "csv": ".csv"}


def table_path(folder: Path, name: str, table_format: str | None = None) -> Path:
    """The file of run table ``name`` (``items`` or ``items.csv``) in ``folder``.

    Args:
        folder: A run folder (or an analysis folder).
        name: The table's name, with or without suffix (``.npy`` arrays keep theirs).
        table_format: ``parquet`` or ``csv``: the file to write. None: the file that
            exists, in either format (the CSV name when neither does).
    """
    path = Path(folder) / name
    if path.suffix == ".npy":
        return path
    stem = path.stem if path.suffix in TABLE_FORMATS.values() else path.name
    if table_format is not None:
        if table_format not in TABLE_FORMATS:
            from modprobe.errors import ModprobeError

            raise ModprobeError(f"--table-format must be {' or '.join(TABLE_FORMATS)}, got "
                                f"{table_format!r}")
        return path.with_name(stem + TABLE_FORMATS[table_format])
    for suffix in TABLE_FORMATS.values():
        if path.with_name(stem + suffix).is_file():
            return path.with_name(stem + suffix)
    return path.with_name(stem + ".csv")


def write_parquet(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame as Parquet (pyarrow; text columns stay text), atomically.

    Args:
        path: The file to write; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        frame: The table; its index is not written.
    """
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_table(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a table in the format its suffix names (``.parquet`` or ``.csv``), atomically.

    Args:
        path: The file to write: ``.parquet`` or ``.pq`` is Parquet,
            any other suffix CSV; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        frame: The table; its index is not written.
    """
    if Path(path).suffix in (".parquet", ".pq"):
        write_parquet(path, frame)
    else:
        write_csv(path, frame)


def read_csv(path: str | os.PathLike[str], text: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV written by `write_csv`; the ``text`` columns stay strings.

    Without it pandas would read an id ``0001`` as the number 1 (and ``0001`` and ``1``
    would collide); empty cells are missing values, the strings ``NA`` or ``null`` are not.

    Args:
        path: The CSV file.
        text: Columns to read as strings (ids, labels); names the file lacks are
            ignored.

    Returns:
        The table, with a default integer index.
    """
    import pandas as pd

    head = pd.read_csv(path, nrows=0).columns
    dtype = {column: str for column in text if column in head}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dtype)


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a numeric array as ``.npy`` (read back with ``allow_pickle=False``), atomically.

    Args:
        path: The file to write; its folder is created if missing, and an existing
            file is replaced only once the new one is complete.
        array: Any shape and non-object dtype (see :func:`read_npy`).

    Raises:
        TypeError: ``array`` has dtype object (it would need pickle to read back).
    """
    if array.dtype == object:
        raise TypeError("refusing to write an object array: it would need pickle to read back")
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), mode="wb")


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.npy`` file without ever unpickling."""
    return np.load(path, allow_pickle=False)
