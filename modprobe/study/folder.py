"""Run folders: the checks before a run starts or resumes, and the fingerprints it records.

A run folder is never overwritten. Starting needs an empty (or new) folder; resuming
needs the folder's ``manifest.json`` and the same inputs: the options that change the
numbers, the data (a hash of ``items.jsonl``, ``dataset.json`` and every image) and the
model (a hash of its config and of samples of every weight tensor). Every runner
(following study, interference, ...) uses these pieces::

    manifest = check_run_folder(out, resume)             # writes nothing
    if manifest is not None:
        check_resume(out, manifest, options, fingerprints, keys)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from modprobe import cli
from modprobe.errors import ModprobeError

MANIFEST = "manifest.json"

#: Elements read from each weight tensor for the model fingerprint (evenly spaced).
SAMPLES_PER_TENSOR = 64


class StudyError(ModprobeError, RuntimeError):
    """A study cannot start or resume (the message says what to do)."""


def check_run_folder(out: str | Path, resume: bool) -> dict[str, Any] | None:
    """Check ``out`` before a run; returns its manifest when resuming, else None.

    Writes nothing. Raises :class:`StudyError` when ``out`` is a file, cannot be
    written, is not empty without ``resume``, or holds no run to resume.
    """
    out = Path(out)
    try:
        cli.check_out(out, resume=resume, what="run")
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
        raise StudyError(f"cannot resume: {path} is not valid JSON ({err}); the run "
                             "folder is damaged, start a new --out") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("options"), dict):
        raise StudyError(f"cannot resume: {path} has no options; start a new --out")
    return manifest


def check_resume(out: Path, manifest: Mapping[str, Any], options: Mapping[str, Any],
                 fingerprints: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Refuse to resume when options, data or model differ from the manifest's.

    Args:
        out: The run folder (for messages).
        manifest: Its manifest.
        options: The options now, keyed like ``manifest["options"]``.
        fingerprints: ``{"data": ..., "model": ...}`` now (see the functions below); a
            manifest without fingerprints (an older run) is not checked for them.
        keys: The option names that must match.

    Raises:
        StudyError: naming every difference.
    """
    before = manifest.get("options", {})
    changed = [f"{k}: {before.get(k)!r} -> {options.get(k)!r}" for k in keys
               if before.get(k) != options.get(k)]
    old = manifest.get("fingerprints") or {}
    for part, what in (("data", "the dataset (items.jsonl, dataset.json or an image)"),
                       ("model", "the model")):
        if part in old and part in fingerprints and old[part] != fingerprints[part]:
            detail = [name for name in fingerprints[part]
                      if old[part].get(name) != fingerprints[part].get(name)]
            changed.append(f"{what} changed since the run started ({', '.join(detail)} differ)")
    if changed:
        raise StudyError(f"cannot resume {out} with different options or inputs "
                         f"({'; '.join(changed)}); resume with the original ones, or start a "
                         "new --out")


def _sha256_file(path: Path, digest: Any | None = None) -> Any:
    digest = digest or hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def data_fingerprint(root: str | Path, images: Iterable[str]) -> dict[str, str]:
    """Hashes of a dataset folder: ``items`` (items.jsonl + dataset.json) and ``images``.

    Args:
        root: The dataset folder.
        images: The image paths its items name (relative, POSIX separators).
    """
    root = Path(root)
    items = hashlib.sha256()
    for name in ("items.jsonl", "dataset.json"):
        if (root / name).is_file():
            items.update(name.encode())
            _sha256_file(root / name, items)
    pictures = hashlib.sha256()
    for image in sorted(set(images)):
        pictures.update(image.encode() + b"\0")
        _sha256_file(root / PurePosixPath(image), pictures)
    return {"items": items.hexdigest(), "images": pictures.hexdigest()}


def model_fingerprint(module: Any) -> dict[str, str]:
    """Hashes of a loaded model: ``config`` and ``weights``.

    ``config`` hashes the model config without the fields that name where it was loaded
    from; ``weights`` hashes every parameter and buffer's name, shape and dtype and
    :data:`SAMPLES_PER_TENSOR` evenly spaced values of it (training or fine-tuning changes
    them), so it costs milliseconds even for a 7B model on a GPU.
    """
    import torch

    config = module.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(key, None)
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    weights = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            weights.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel() == 0:
                continue
            index = torch.linspace(0, flat.numel() - 1, min(SAMPLES_PER_TENSOR, flat.numel()),
                                   device=flat.device).round().long()
            weights.update(flat[index].float().cpu().numpy().tobytes())
    return {"config": config_hash.hexdigest(), "weights": weights.hexdigest()}
