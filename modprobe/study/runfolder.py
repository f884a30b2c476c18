"""Run folders: chunked, resumable, never overwritten, with a manifest.

Every runner of modprobe (the following study, the interference study, ...) writes its
results the same way::

    RUN/manifest.json        options, versions, status ("running" / "complete")
    RUN/chunks/NNNNN/        one folder per chunk of items; its marker file (written
                             last, atomically) says the chunk is finished
    RUN/<table>.csv ...      the chunks' tables concatenated once all are done

An existing non-empty folder is never written into unless the run is resumed with the
same options (the ones that change the numbers); a killed run resumes from its last
finished chunk and ends with the tables of a run that was never interrupted.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.io import read_npy, write_csv, write_json, write_npy

MANIFEST = "manifest.json"
CHUNKS = "chunks"


class StudyError(RuntimeError):
    """A run cannot start or resume (the message says what to do)."""


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


def prepare_run_folder(out: Path, options: Mapping[str, Any], resume: bool,
                       resume_keys: Sequence[str], kind: str | None = None) -> dict[str, Any]:
    """Create a run folder, or check that the one to resume matches ``options``.

    Args:
        out: The run folder.
        options: The run's options (written to the manifest).
        resume: Continue the run already in ``out``.
        resume_keys: Options that must be equal to resume (those that change numbers).
        kind: What runs here (``"interference"``); a resumed folder of another kind is
            refused.

    Returns:
        The manifest (a new one, or the resumed run's).

    Raises:
        StudyError: the folder holds something and ``resume`` is off; nothing to resume;
            the options or kind differ.
    """
    manifest_path = out / MANIFEST
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise StudyError(
                f"run folder {out} already exists and is not empty; pass --resume to continue "
                "that run, or choose another --out (modprobe never overwrites a run)")
        if not manifest_path.is_file():
            raise StudyError(f"cannot resume: {out} has no {MANIFEST}; it is not a modprobe run")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if kind is not None and manifest.get("kind", kind) != kind:
            raise StudyError(f"cannot resume {out}: it holds a {manifest.get('kind')} run, "
                             f"not a {kind} run; choose another --out")
        before = manifest.get("options", {})
        changed = [k for k in resume_keys if before.get(k) != options.get(k)]
        if changed:
            diffs = ", ".join(f"{k}: {before.get(k)!r} -> {options.get(k)!r}" for k in changed)
            raise StudyError(f"cannot resume {out} with different options ({diffs}); "
                             "use the original options or a new --out")
        return manifest
    if resume and not manifest_path.is_file():
        raise StudyError(f"nothing to resume: {out} holds no run; drop --resume to start one")
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"options": dict(options), "versions": versions(),
                                "started": now(), "status": "running"}
    if kind is not None:
        manifest["kind"] = kind
    write_json(manifest_path, manifest)
    return manifest


def chunk_folder(out: Path, index: int) -> Path:
    """The folder of chunk ``index``."""
    return out / CHUNKS / f"{index:05d}"


def finished_chunks(out: Path, count: int, marker: str = "items.csv") -> set[int]:
    """Indices of the chunks (of ``count``) whose marker file exists."""
    return {i for i in range(count) if (chunk_folder(out, i) / marker).is_file()}


def write_chunk(folder: Path, files: Mapping[str, pd.DataFrame | np.ndarray],
                marker: str = "items.csv") -> None:
    """Write a chunk's tables and arrays, ``marker`` last (its presence = chunk done)."""
    for name, value in files.items():
        if name != marker:
            _write(folder / name, value)
    _write(folder / marker, files[marker])


def _write(path: Path, value: pd.DataFrame | np.ndarray) -> None:
    if isinstance(value, np.ndarray):
        write_npy(path, value)
    else:
        write_csv(path, value)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV the runners wrote (empty strings are missing, ``"NA"`` stays a string)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def gather_chunks(out: Path, count: int, names: Sequence[str]) -> dict[str, Any]:
    """Concatenate every chunk's ``names`` (CSV: rows, ``.npy``: first axis), in order,
    and write each whole table to ``out/<name>``."""
    folders = [chunk_folder(out, i) for i in range(count)]
    gathered: dict[str, Any] = {}
    for name in names:
        if name.endswith(".npy"):
            value: Any = np.concatenate([read_npy(f / name) for f in folders], axis=0)
        else:
            value = pd.concat([read_table(f / name) for f in folders], ignore_index=True)
        _write(out / name, value)
        gathered[name] = value
    return gathered


def mark_complete(out: Path, manifest: dict[str, Any]) -> None:
    """Record in the manifest that the run finished."""
    manifest.update({"status": "complete", "finished": now()})
    write_json(out / MANIFEST, manifest)
