"""Run folders: chunked, resumable, never overwritten, with a manifest.

Every runner of modprobe (the following study, the interference study, ...) writes its
results the same way::

    RUN/manifest.json        options, versions, status ("running" / "complete")
    RUN/chunks/NNNNN/        one folder per chunk of items (CSV and .npy); its marker
                             file (written last, atomically) says the chunk is finished
    RUN/<table>.parquet ...  the chunks' tables concatenated once all are done (Parquet,
                             or CSV when the run asks for it), then the chunks are removed

An existing non-empty folder is never written into unless the run is resumed with the
same options (the ones that change the numbers) and the same inputs: the manifest keeps
fingerprints of the data (a hash of ``items.jsonl``, ``dataset.json`` and every image) and
of the model (its config and samples of every weight tensor), and a resume that finds them
changed is refused with what changed. A killed run resumes from its last finished chunk
(half-written temporary files are removed) and ends with the tables of a run that was never
interrupted. Checks come before writes: :func:`check_run_folder` writes nothing, so a
runner can check everything the user gave before :func:`prepare_run_folder` creates the
folder. Those checks live in :mod:`~modprobe.study.folder_checks`, the data
fingerprints in :mod:`~modprobe.study.fingerprints`; both are re-exported here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis import table as analysis_table
from modprobe.analysis.table import TEXT_COLUMNS
from modprobe.fingerprint import SAMPLES_PER_TENSOR, model_fingerprint
from modprobe.io import (
    read_npy,
    remove_temporary_files,
    table_path,
    write_csv,
    write_json,
    write_npy,
    write_parquet,
)
from modprobe.study.fingerprints import data_fingerprint, ri_folder_fingerprint
from modprobe.study.folder_checks import (
    MANIFEST,
    StudyError,
    check_resume,
    check_run_folder,
    upgrade_options,
)

__all__ = [
    "CHUNKS", "MANIFEST", "SAMPLES_PER_TENSOR", "StudyError", "check_resume",
    "check_run_folder", "chunk_folder", "data_fingerprint", "finished_chunks",
    "gather_chunks", "is_complete", "lock_run_folder", "mark_complete", "model_fingerprint",
    "now", "prepare_run_folder", "read_table", "release_run_folder", "ri_folder_fingerprint",
    "undo_new_run", "upgrade_options", "versions", "write_chunk",
]

CHUNKS = "chunks"

def versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers."""
    import nnsight
    import torch
    import transformers

    import modprobe

    return {"modprobe": modprobe.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "nnsight": nnsight.__version__,
            "python": platform.python_version()}


def now() -> str:
    """Local time stamp for manifests."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")



#: Run folders this process holds the lock of: resolved path -> open folder descriptor.
_LOCKS: dict[str, int] = {}


def lock_run_folder(out: str | Path) -> None:
    """Hold an exclusive OS lock on the run folder ``out`` for this process.

    The lock is ``flock`` on the folder itself (no lock file: the folder's contents are
    not touched), so the OS drops it when the process ends, crash or kill included; a
    second process that tries to run in the folder at the same time is refused instead of
    computing the same chunks twice. Taking it again in the same process is a no-op, and
    :func:`release_run_folder` gives it back. Where the file system has no ``flock``
    (Windows, some network mounts) nothing is locked.

    Raises:
        StudyError: another process holds the lock.
    """
    key = str(Path(out).resolve())
    if key in _LOCKS:
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return
    descriptor = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StudyError(f"{out} is in use by another modprobe process (a run, a --resume or "
                         "a notebook that started one); wait for it to finish or stop it, "
                         "then resume; two runs in one folder would compute everything "
                         "twice") from None
    except OSError:  # no flock on this file system
        os.close(descriptor)
        return
    _LOCKS[key] = descriptor


def release_run_folder(out: str | Path) -> None:
    """Give back this process's lock on ``out`` (:func:`lock_run_folder`), if it holds it."""
    descriptor = _LOCKS.pop(str(Path(out).resolve()), None)
    if descriptor is not None:
        os.close(descriptor)  # closing the descriptor releases the flock


def undo_new_run(out: str | Path, created: bool) -> None:
    """Remove what a refused new run wrote.

    A folder another process has locked (:func:`lock_run_folder`) is its run: left alone.

    Args:
        out: The new run's folder.
        created: Whether the run created ``out``: then the whole folder goes, else
            everything in it (it was empty before, as :func:`check_run_folder` found it).
    """
    out = Path(out)
    if not out.is_dir():
        return
    try:
        lock_run_folder(out)
    except StudyError:
        return
    release_run_folder(out)
    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()


def prepare_run_folder(out: Path, options: Mapping[str, Any], resume: bool,
                       resume_keys: Sequence[str], kind: str | None = None,
                       fingerprints: Mapping[str, Any] | None = None,
                       generated: Sequence[str] = (),
                       resume_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Create a run folder, or check that the one to resume matches ``options``.

    Args:
        out: The run folder.
        options: The run's options (written to the manifest).
        resume: Continue the run already in ``out``.
        resume_keys: Options that must be equal to resume (those that change numbers).
        kind: What runs here (``"interference"``); a resumed folder of another kind is
            refused.
        fingerprints: Data and model fingerprints, recorded and compared on resume.
        generated: Entries that this run itself wrote into a new ``out`` after
            :func:`check_run_folder` found it empty (the data it generated): a new run
            whose folder holds only these is not refused as "not empty".
        resume_defaults: What a resume key older manifests lack meant (see
            :func:`check_resume`).

    Returns:
        The manifest (a new one, or the resumed run's with the options now).

    Raises:
        StudyError: the folder is a file, unwritable, or holds something and ``resume``
            is off; nothing to resume; the options, inputs or kind differ.
    """
    out = Path(out)
    if resume and out.is_dir():
        lock_run_folder(out)  # before reading the manifest: one run per folder at a time
    only_ours = (not resume and bool(generated) and out.is_dir()
                 and {p.name for p in out.iterdir()} <= set(generated))
    manifest = None if only_ours else check_run_folder(out, resume, kind)
    if manifest is not None:
        check_resume(out, manifest, options, resume_keys, fingerprints, resume_defaults)
        remove_temporary_files(out)  # half-written files of a killed run
        manifest["options"] = dict(options)  # options outside resume_keys may change
    else:
        manifest = {"options": dict(options), "versions": versions(), "started": now(),
                    "status": "running"}
        if kind is not None:
            manifest["kind"] = kind
    if fingerprints is not None:
        manifest["fingerprints"] = dict(fingerprints)
    if out.is_dir():
        remove_temporary_files(out)  # a killed start's half-written manifest
    out.mkdir(parents=True, exist_ok=True)
    lock_run_folder(out)
    write_json(out / MANIFEST, manifest)
    return manifest


def chunk_folder(out: Path, index: int) -> Path:
    """The folder of chunk ``index`` of the run in ``out`` (``chunks/00003``).

    Args:
        out: The run folder.
        index: The chunk's index.

    Returns:
        The chunk's folder path (not created).
    """
    return out / CHUNKS / f"{index:05d}"


def is_complete(out: Path) -> bool:
    """Whether the manifest of ``out`` says the run finished."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("status") == "complete"


def finished_chunks(out: Path, count: int, marker: str = "items.csv") -> set[int]:
    """Indices of the finished chunks: those whose marker file exists.

    Args:
        out: The run folder.
        count: The number of chunks of the run.
        marker: The file a chunk writes last.

    Returns:
        The finished chunks' indices; all of them for a complete run whose chunks were
        removed (its gathered tables hold them).
    """
    if not (out / CHUNKS).is_dir() and is_complete(out):
        return set(range(count))
    return {i for i in range(count) if (chunk_folder(out, i) / marker).is_file()}


def write_chunk(folder: Path, files: Mapping[str, pd.DataFrame | np.ndarray],
                marker: str = "items.csv") -> None:
    """Write a chunk's tables and arrays, ``marker`` last (its presence = chunk done).

    Args:
        folder: The chunk's folder (:func:`chunk_folder`).
        files: Frames (CSV, or Parquet by suffix) and arrays (``.npy``) by file name;
            ``marker`` must be one of them.
        marker: The file written last.
    """
    for name, value in files.items():
        if name != marker:
            _write(folder / name, value)
    _write(folder / marker, files[marker])


def _write(path: Path, value: pd.DataFrame | np.ndarray) -> None:
    if isinstance(value, np.ndarray):
        write_npy(path, value)
    elif path.suffix == ".parquet":
        write_parquet(path, value)
    else:
        write_csv(path, value)


def read_table(path: Path, text: Iterable[str] = TEXT_COLUMNS) -> pd.DataFrame:
    """A table a runner wrote, read by :func:`modprobe.analysis.table.read_table`.

    The one table reader, without the prediction-table check.

    Args:
        path: A CSV or Parquet table.
        text: Columns read as text whatever they hold (an id ``0001`` stays ``"0001"``).

    Returns:
        The table.
    """
    return analysis_table.read_table(path, validate=False, text=text)


def gather_chunks(out: Path, count: int, names: Sequence[str],
                  table_format: str = "csv") -> dict[str, Any]:
    """Concatenate every chunk's files, in order, and write each whole table to ``out``.

    Tables are concatenated by rows, ``.npy`` arrays along their first axis. A complete
    run whose chunks were removed has its tables read back instead.

    Args:
        out: The run folder.
        count: The number of chunks.
        names: The chunk files to gather (``items.csv``, ``attention_mass.npy``...).
        table_format: ``"parquet"`` or ``"csv"``: how the whole tables are written.

    Returns:
        The whole tables and arrays, keyed by ``names``.
    """
    folders = [chunk_folder(out, i) for i in range(count)]
    gathered: dict[str, Any] = {}
    if not (out / CHUNKS).is_dir() and is_complete(out):  # chunks removed at completion
        return {name: read_npy(out / name) if name.endswith(".npy") else read_table(out / name)
                for name in names}
    for name in names:
        if name.endswith(".npy"):
            value: Any = np.concatenate([read_npy(f / name) for f in folders], axis=0)
        else:
            value = pd.concat([read_table(f / name) for f in folders], ignore_index=True)
        _write(table_path(out, name, table_format), value)
        gathered[name] = value
    return gathered


def mark_complete(out: Path, manifest: dict[str, Any], remove_chunks: bool = False) -> None:
    """Record in the manifest that the run finished.

    Args:
        out: The run folder.
        manifest: Its manifest (updated in place).
        remove_chunks: Delete ``chunks/`` once the manifest says complete: the gathered
            tables hold everything, and keeping both would be a second copy of the run.
            Only for runners that re-read the gathered tables on a resume of a finished run.
    """
    manifest.update({"status": "complete", "finished": now()})
    write_json(out / MANIFEST, manifest)
    if remove_chunks:
        shutil.rmtree(out / CHUNKS, ignore_errors=True)
    release_run_folder(out)
