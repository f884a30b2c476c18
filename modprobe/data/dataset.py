"""A dataset folder on disk: ``items.jsonl`` + ``images/`` + ``dataset.json``.

:func:`load_dataset` validates a folder (generated or the user's own) and returns a
:class:`Dataset`; :func:`write_dataset` writes one atomically.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from PIL import Image

from modprobe.data.schema import DatasetError, FieldError, Item, image_problem, parse_items
from modprobe.io import write_bytes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ITEMS_FILE = "items.jsonl"
INFO_FILE = "dataset.json"
IMAGES_DIR = "images"

#: The three conditions of a study, as in ``modprobe.adapters.base.CONDITIONS``.
CONDITIONS: tuple[str, ...] = ("vision", "text", "multi")

#: What ``Dataset.prompts`` gives per condition: (question, context or None, image or None).
PromptParts = tuple[str, "str | None", "Image.Image | None"]


@dataclass
class Dataset:
    """A validated conflict dataset.

    Attributes:
        root: The dataset folder.
        items: The items, in file order.
        info: The contents of ``dataset.json`` (empty when the folder has none).
    """

    root: Path
    items: list[Item]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of items."""
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        """The items, in file order."""
        return iter(self.items)

    def __getitem__(self, index: int) -> Item:
        """The item at position ``index`` in file order."""
        return self.items[index]

    def by_id(self, item_id: str) -> Item:
        """The item with id ``item_id`` (``KeyError`` when there is none)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(f"no item with id {item_id!r} in {self.root}")

    def filter(self, keep: Callable[[Item], bool]) -> Dataset:
        """A dataset of the items for which ``keep(item)`` is true (same root and info)."""
        return Dataset(self.root, [item for item in self.items if keep(item)], dict(self.info))

    def image_path(self, item: Item) -> Path:
        """Absolute path of the item's image."""
        return self.root / PurePosixPath(item.image.replace("\\", "/"))

    def open_image(self, item: Item) -> Image.Image:
        """The item's image, loaded and converted to RGB.

        Raises:
            DatasetError: the file is gone or no longer a usable image (it was checked
                when the dataset was loaded, so it changed since).
        """
        path = self.image_path(item)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    return image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:
            problem = (image_problem(path, item.image) if path.is_file()
                       else f"file {item.image!r} not found") or str(exc)
        raise DatasetError(self.root, [FieldError(
            ITEMS_FILE, 0, "image", f"item {item.id!r}: {problem} (the file changed after the "
            "dataset was loaded)")])

    def prompts(self, item: Item) -> dict[str, PromptParts]:
        """The parts of each condition's prompt, keyed ``"vision"``, ``"text"``, ``"multi"``.

        Each value is ``(question, context or None, image or None)``, the arguments of
        ``modprobe.adapters.Prompt.for_condition(condition, *parts)``. The image is
        opened once and shared by the vision and multi conditions.
        """
        image = self.open_image(item)
        return {
            "vision": (item.question, None, image),
            "text": (item.question, item.context, None),
            "multi": (item.question, item.context, image),
        }

    def to_frame(self) -> pd.DataFrame:
        """The items as a pandas table (one row per item, extra fields as columns)."""
        import pandas as pd

        return pd.DataFrame([item.to_record() for item in self.items])


def load_dataset(root: str | Path) -> Dataset:
    """Load and validate a dataset folder.

    Args:
        root: Folder holding ``items.jsonl``, the images it names and optionally
            ``dataset.json``.

    Raises:
        DatasetError: listing every problem found (line number, field, message).
    """
    root = Path(root)
    items_path = root / ITEMS_FILE
    if not items_path.is_file():
        raise DatasetError(root, [FieldError(ITEMS_FILE, 0, None, f"not found in {root}; "
                                             "a dataset folder needs items.jsonl")])
    try:
        text = items_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(root, [FieldError(ITEMS_FILE, 0, None,
                                             f"not UTF-8 text ({exc.reason})")]) from None
    items, errors = parse_items(text, root)
    info, info_errors = read_info(root)
    errors = info_errors + errors
    if not errors and not items:
        errors.append(FieldError(ITEMS_FILE, 0, None, "holds no items"))
    if errors:
        raise DatasetError(root, errors)
    return Dataset(root, items, info)


def read_info(root: Path) -> tuple[dict[str, Any], list[FieldError]]:
    """Read ``dataset.json`` of a folder, and what is wrong with it.

    Args:
        root: The dataset folder.

    Returns:
        The parsed object (empty when the file is absent or unreadable) and its problems
        (not UTF-8, not JSON, not an object) as field errors naming the file.
    """
    path = root / INFO_FILE
    if not path.exists():
        return {}, []
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return {}, [FieldError(INFO_FILE, 0, None, f"not UTF-8 text ({exc.reason} at byte "
                               f"{exc.start}); save it as UTF-8")]
    except json.JSONDecodeError as exc:
        return {}, [FieldError(INFO_FILE, exc.lineno, None, f"not valid JSON ({exc.msg} at "
                               f"column {exc.colno})")]
    if not isinstance(info, dict):
        return {}, [FieldError(INFO_FILE, 0, None, "must hold a JSON object")]
    return info, []


def write_dataset(root: str | Path, items: Iterable[Item], info: dict[str, Any]) -> Path:
    """Write ``items.jsonl`` and ``dataset.json`` into ``root``, each atomically.

    Images must already be in place (the generators write them first), so a folder
    whose ``items.jsonl`` exists is always complete. ``info`` gets an ``n_items`` count
    and per-group counts.

    Args:
        root: The dataset folder (created if needed).
        items: The items, in file order.
        info: The dataset's description (name, generator, seed...).

    Returns:
        The path of ``items.jsonl``.
    """
    root = Path(root)
    items = list(items)
    lines = "".join(item.to_json() + "\n" for item in items)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.group] = counts.get(item.group, 0) + 1
    info = {**info, "n_items": len(items), "n_items_by_group": counts}
    # dataset.json first, items.jsonl last: items.jsonl is the commit point readers check.
    write_bytes(root / INFO_FILE, (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    write_bytes(root / ITEMS_FILE, lines.encode("utf-8"))
    return root / ITEMS_FILE
