"""Checks before a run writes anything: may ``out`` start a run, or resume the one in it?

:func:`check_run_folder` writes nothing, so a runner calls it before generating data or
loading a model; :func:`check_resume` refuses a resume whose options, data or model
differ from the manifest's. Both raise :class:`StudyError`, whose message says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modprobe.checks import check_out
from modprobe.errors import ModprobeError
from modprobe.io import TMP_PREFIX, TMP_SUFFIX

MANIFEST = "manifest.json"


class StudyError(ModprobeError, RuntimeError):
    """A run cannot start or resume (the message says what to do)."""


def check_run_folder(out: str | Path, resume: bool,
                     kind: str | None = None) -> dict[str, Any] | None:
    """Check ``out`` before a run; returns its manifest when resuming, else None.

    Writes nothing, so a runner calls it first and refuses bad input with no trace.

    Args:
        out: The run folder.
        resume: Whether the run resumes the one in ``out``.
        kind: The kind of run (``"interference"``); a resumed run of another kind is
            refused (None: any).

    Raises:
        StudyError: ``out`` is a file, cannot be written, is not empty without
            ``resume``, holds no run to resume, or a run of another ``kind``.
    """
    out = Path(out)
    leftovers = _killed_start(out)
    if leftovers is not None:
        if set(leftovers) <= {"<temporary files>"} and not resume:
            return None  # only half-written files of ours: prepare_run_folder removes them
        again = f"remove it (rm -r {out}) and run" if "data" in leftovers else "run"
        raise StudyError(f"{out} holds only what a run killed before it started left "
                         f"({', '.join(leftovers)}; no {MANIFEST}), so nothing was computed: "
                         f"{again} the same command again without --resume")
    try:
        check_out(out, resume=resume, what="run")
    except ModprobeError as err:
        raise StudyError(str(err)) from None
    if not resume:
        return None
    path = out / MANIFEST
    if not path.is_file():
        raise StudyError(f"cannot resume: {out} has no {MANIFEST}, so it is not a modprobe "
                         "run; choose the run's folder or drop --resume")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StudyError(f"cannot resume: {path} is not valid JSON ({err}); the run folder "
                         "is damaged, start a new --out") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("options"), dict):
        raise StudyError(f"cannot resume: {path} has no options; start a new --out")
    manifest["options"] = upgrade_options(manifest["options"])
    if kind is not None and manifest.get("kind", kind) != kind:
        raise StudyError(f"cannot resume {out}: it holds a {manifest.get('kind')} run, "
                         f"not a {kind} run; choose another --out")
    return manifest


def upgrade_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest's options in today's names.

    Runs written before ``data_seed`` existed seeded their data (and perturbations) with
    ``seed``; runs written before Parquet wrote CSV tables.

    Args:
        options: The options a manifest recorded.

    Returns:
        A copy with ``data_seed`` and ``table_format`` filled in as those runs meant them.
    """
    upgraded = dict(options)
    if "seed" in upgraded and "data_seed" not in upgraded:
        upgraded["data_seed"] = upgraded["seed"]
    upgraded.setdefault("table_format", "csv")  # runs before Parquet wrote CSV
    return upgraded


def _killed_start(out: Path) -> list[str] | None:
    """What a run killed before its first manifest was written left in ``out``.

    That is the atomic writers' temporaries (listed as ``<temporary files>``) and the
    ``data`` folder a runner generates first; None when ``out`` holds a manifest or
    anything else.
    """
    if not out.is_dir() or (out / MANIFEST).exists():
        return None
    found: set[str] = set()
    for entry in out.iterdir():
        if entry.name.startswith(TMP_PREFIX) and entry.name.endswith(TMP_SUFFIX):
            found.add("<temporary files>")
        elif entry.name == "data" and entry.is_dir() and not entry.is_symlink():
            found.add("data")
        else:
            return None
    return sorted(found) or None


def check_resume(out: Path, manifest: Mapping[str, Any], options: Mapping[str, Any],
                 resume_keys: Iterable[str],
                 fingerprints: Mapping[str, Any] | None = None,
                 defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse to resume when options, data or model differ from the manifest's.

    Args:
        out: The run folder (for messages).
        manifest: Its manifest.
        options: The options now, keyed like ``manifest["options"]``.
        resume_keys: The option names that must match.
        fingerprints: ``{"data": ..., "model": ...}`` now (:func:`~modprobe.study.fingerprints.data_fingerprint`,
            :func:`~modprobe.fingerprint.model_fingerprint`); parts the manifest lacks are not compared.
        defaults: What a resume key the manifest lacks meant when it was written (an
            option added later: ``{"causal": False}``); a key missing without a default
            compares as None.

    Raises:
        StudyError: naming every difference.
    """
    before = {**(defaults or {}), **manifest.get("options", {})}
    changed = [f"{k}: {before.get(k)!r} -> {options.get(k)!r}" for k in resume_keys
               if not _same_option(before.get(k), options.get(k))]
    old = manifest.get("fingerprints") or {}
    for part, what in (("data", "the dataset (items.jsonl, dataset.json or an image)"),
                       ("model", "the model"), ("ri_folder", "the --ri-folder images")):
        now_part = (fingerprints or {}).get(part)
        if part in old and now_part is not None and old[part] != now_part:
            detail = [name for name in now_part if old[part].get(name) != now_part.get(name)]
            changed.append(f"{what} changed since the run started ({', '.join(detail)} differ)")
    if changed:
        raise StudyError(f"cannot resume {out} with different options or inputs "
                         f"({'; '.join(changed)}); resume with the original ones, or start a "
                         "new --out")


def _same_option(before: Any, now: Any) -> bool:
    """Equal values, or two spellings of one existing path (``runs/m`` and ``/abs/runs/m``)."""
    if before == now:
        return True
    if isinstance(before, str) and isinstance(now, str):
        try:
            return Path(before).exists() and Path(now).exists() and \
                Path(before).samefile(Path(now))
        except OSError:
            return False
    return False

