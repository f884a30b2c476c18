"""Helpers of the bad-input battery: folder snapshots, one-line refusals, broken files."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

Snapshot = dict[str, tuple[bytes | None, int]]


def snapshot(*roots: Path) -> Snapshot:
    """Every file and folder under ``roots``: bytes (None for a folder) and mode."""
    state: Snapshot = {}
    for root in roots:
        root = Path(root)
        if not root.exists() and not root.is_symlink():
            state[str(root)] = (b"<absent>", 0)
            continue
        paths = [root, *root.rglob("*")] if root.is_dir() else [root]
        for path in paths:
            if path.is_symlink():
                state[str(path)] = (os.readlink(path).encode(), 0o120000)
            elif path.is_dir():
                state[str(path)] = (None, path.stat().st_mode)
            else:
                state[str(path)] = (path.read_bytes(), path.stat().st_mode)
    return state


def error_lines(err: str) -> list[str]:
    """The lines of stderr that are not progress bars."""
    return [line for line in err.splitlines()
            if line.strip() and "\r" not in line and "it/s]" not in line
            and not line.startswith(("Loading weights", "Writing model"))]


def refused(main: Callable[[Sequence[str]], int], argv: Sequence[str],
            capsys: pytest.CaptureFixture[str], names: str | Iterable[str],
            roots: Iterable[Path]) -> str:
    """Run ``main(argv)``; assert exit 2, one error line naming ``names``, no traceback and
    no change under ``roots``. Returns the error line."""
    roots = list(roots)
    before = snapshot(*roots)
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    errors = [line for line in error_lines(err) if "error:" in line]
    assert len(errors) == 1, err
    for name in [names] if isinstance(names, str) else names:
        assert name in err, (name, err)
    assert snapshot(*roots) == before, "a refusal changed files on disk"
    return errors[0]


def raises_unchanged(call: Callable[[], object], kind: type[BaseException], match: str,
                     roots: Iterable[Path]) -> BaseException:
    """``call()`` raises ``kind`` matching ``match`` and leaves ``roots`` as they were."""
    roots = list(roots)
    before = snapshot(*roots)
    with pytest.raises(kind, match=match) as info:
        call()
    assert snapshot(*roots) == before, "a refusal changed files on disk"
    return info.value


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def first_image(dataset: Path) -> Path:
    import json

    line = (dataset / "items.jsonl").read_text().splitlines()[0]
    return dataset / json.loads(line)["image"]


def bomb_png(path: Path, side: int = 30_000) -> None:
    """A tiny PNG whose header claims ``side x side`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def break_image(path: Path, how: str, outside: Path | None = None) -> None:
    """Damage an image file in place: ``empty``, ``truncated``, ``garbage``, ``bomb``,
    ``symlink`` (to a valid image outside the dataset, in ``outside``)."""
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"this is not a png at all" * 10)
    elif how == "bomb":
        bomb_png(path)
    elif how == "symlink":
        assert outside is not None
        outside.mkdir(parents=True, exist_ok=True)
        target = outside / "elsewhere.png"
        shutil.copy(path, target)
        path.unlink()
        path.symlink_to(target)
    else:  # pragma: no cover
        raise ValueError(how)
