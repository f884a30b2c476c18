"""Fingerprints of a run's inputs, recorded in its manifest and compared on resume.

:func:`data_fingerprint` hashes a dataset folder (its items and every image it names),
:func:`ri_folder_fingerprint` the images RI draws from; the model's fingerprint is
:func:`modprobe.fingerprint.model_fingerprint`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any


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


def ri_folder_fingerprint(folder: str | Path) -> dict[str, str]:
    """Hash of the images RI draws from ``folder`` (names and bytes), as ``{"images": ...}``."""
    from modprobe.perturb import usable_images

    names = [Path(path).name for path in usable_images(str(folder))]
    return {"images": data_fingerprint(folder, names)["images"]}
