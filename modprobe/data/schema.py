"""The item schema of a conflict dataset and its validator.

One JSON object per line of ``items.jsonl`` (see ``docs/data.md``). The validator checks
every line and reports every problem at once, each with its line number and field, in
one :class:`DatasetError`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from modprobe.errors import ModprobeError

T = TypeVar("T")

#: The kinds of item (docs/science.md section 1: conflicts and the two irrelevance controls).
GROUPS: tuple[str, ...] = ("conflict", "text_irrelevant", "image_irrelevant")

#: Required fields and the JSON type each must have.
REQUIRED_FIELDS: dict[str, type] = {
    "id": str,
    "group": str,
    "task": str,
    "image": str,
    "question": str,
    "context": str,
    "answer_vision": str,
    "answer_text": str,
    "d_v": int,
    "d_t": int,
    "shape": str,
}

#: Optional fields the toolkit understands; checked when present, other fields pass through.
OPTIONAL_FIELDS: dict[str, type] = {
    "n_distractors": int,
    "occlusion_rate": float,
    "target_fraction": float,
    "answer_text_options": list,
    "cluster": str,
}

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list"}

#: How many errors the message lists before summarising (all are in ``DatasetError.errors``).
MAX_LISTED_ERRORS = 200


@dataclass(frozen=True)
class FieldError:
    """One problem in a dataset file.

    Attributes:
        file: File name relative to the dataset folder (``"items.jsonl"``).
        line: 1-based line number (0 when the problem is about the whole file).
        field: The offending field, or ``None`` when the whole line is at fault.
        message: What is wrong and, where it helps, what to do.
    """

    file: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        """``FILE line N, field 'F': message``."""
        where = f"{self.file} line {self.line}" if self.line else self.file
        if self.field is not None:
            where += f", field {self.field!r}"
        return f"{where}: {self.message}"


class DatasetError(ModprobeError, ValueError):
    """A dataset folder does not follow the schema; ``errors`` lists every problem."""

    def __init__(self, root: Path | str, errors: list[FieldError],
                 schema: str = "docs/data.md") -> None:
        """Keep every problem and list the first :data:`MAX_LISTED_ERRORS` in the message.

        Args:
            root: The dataset folder.
            errors: Every problem found.
            schema: Where the schema is documented (named in the message).
        """
        self.root = Path(root)
        self.errors = list(errors)
        listed = "\n".join(f"  {e}" for e in self.errors[:MAX_LISTED_ERRORS])
        more = len(self.errors) - MAX_LISTED_ERRORS
        tail = f"\n  ... and {more} more (see DatasetError.errors)" if more > 0 else ""
        plural = "s" if len(self.errors) != 1 else ""
        super().__init__(
            f"dataset {self.root} has {len(self.errors)} error{plural} "
            f"(schema: {schema}):\n{listed}{tail}"
        )


@dataclass
class Item:
    """One dataset item: an image, a description and a question, with both answers.

    Attributes:
        id: Unique id within the dataset.
        group: ``"conflict"``, ``"text_irrelevant"`` or ``"image_irrelevant"``.
        task: What is asked, e.g. ``"color"``.
        image: Image path relative to the dataset folder (POSIX separators).
        question: The full question, answer-format instruction included.
        context: The textual description.
        answer_vision: The answer the image supports.
        answer_text: The answer the description states.
        d_v: Visual difficulty tier.
        d_t: Textual difficulty tier.
        shape: The shape the question asks about.
        extra: Every other field of the line, in file order (generator metadata).
    """

    id: str
    group: str
    task: str
    image: str
    question: str
    context: str
    answer_vision: str
    answer_text: str
    d_v: int
    d_t: int
    shape: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON object of this item: required fields first, then ``extra``."""
        record: dict[str, Any] = {name: getattr(self, name) for name in REQUIRED_FIELDS}
        record.update(self.extra)
        return record

    def to_json(self) -> str:
        """One line of ``items.jsonl`` (no trailing newline)."""
        return json.dumps(self.to_record(), ensure_ascii=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Item:
        """Build an item from an already validated JSON object."""
        known = {name: record[name] for name in REQUIRED_FIELDS}
        extra = {k: v for k, v in record.items() if k not in REQUIRED_FIELDS}
        return cls(**known, extra=extra)


def _type_ok(value: Any, expected: type) -> bool:
    # bool is an int subclass in Python but never a valid tier or count here.
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def check_record(record: Any, line: int, root: Path | None, file: str = "items.jsonl",
                 image_cache: dict[str, str | None] | None = None) -> list[FieldError]:
    """All schema problems of one parsed line (duplicate ids are checked by the caller).

    Args:
        record: The parsed JSON value of the line.
        line: Its 1-based line number, for the messages.
        root: The dataset folder, to check that the image exists, stays inside the folder
            and opens as an image (``None``: skip those checks).
        file: File name used in the messages.
        image_cache: Results of images already checked (items may share an image).
    """
    error = functools.partial(FieldError, file, line)  # error(field, message)

    if not isinstance(record, dict):
        return [error(None, f"expected a JSON object, got {_describe(record)}")]
    errors: list[FieldError] = []
    for name, expected in {**REQUIRED_FIELDS, **OPTIONAL_FIELDS}.items():
        if name not in record:
            if name in REQUIRED_FIELDS:
                errors.append(error(name, "missing"))
            continue
        value = record[name]
        if not _type_ok(value, expected):
            errors.append(error(name, f"expected {_TYPE_NAMES[expected]}, "
                                      f"got {_describe(value)}"))
        elif expected is str and name != "context" and not value.strip():
            errors.append(error(name, "empty"))
        elif expected is str and text_problem(value):
            errors.append(error(name, text_problem(value)))  # type: ignore[arg-type]
    ok = {name for name in record if not any(e.field == name for e in errors)}

    if "context" in ok and not record["context"].strip():
        errors.append(error("context", "empty; the text and multi conditions need a description"))
    if "group" in ok and record["group"] not in GROUPS:
        errors.append(error("group", f"unknown value {record['group']!r}; use one of "
                                     f"{', '.join(GROUPS)}"))
    for name in ("d_v", "d_t", "n_distractors"):
        if name in ok and record[name] < 0:
            errors.append(error(name, f"must be >= 0, got {record[name]}"))
    for name in ("occlusion_rate", "target_fraction"):
        if name in ok and not 0.0 <= record[name] <= 1.0:
            errors.append(error(name, f"must lie in [0, 1], got {record[name]}"))
    if "answer_text_options" in ok and not all(
            isinstance(v, str) and v for v in record["answer_text_options"]):
        errors.append(error("answer_text_options", "must be a list of non-empty strings"))
    if {"group", "answer_vision", "answer_text"} <= ok and record["group"] == "conflict" \
            and record["answer_vision"].strip().lower() == record["answer_text"].strip().lower():
        errors.append(error("answer_text", f"equals answer_vision ({record['answer_text']!r}) "
                                           "in a conflict item; a conflict needs two different "
                                           "answers"))
    if "image" in ok:
        problem = _image_problem(record["image"], root, image_cache)
        if problem:
            errors.append(error("image", problem))
    return errors


def text_problem(text: str) -> str | None:
    r"""Why a string cannot be written as UTF-8, or None.

    JSON escapes allow a lone surrogate such as ``"\ud800"``, which UTF-8 cannot hold.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"holds a lone surrogate {text[err.start]!r} at character {err.start}, which "
                "is not Unicode text; fix the \\u escape (a pair such as \\ud83d\\ude00, or "
                "the character itself)")
    return None


def id_problem(value: Any) -> str | None:
    """Why an item id is unusable (not a string, empty or blank, not Unicode), or None."""
    if not isinstance(value, str):
        return f"expected a string, got {_describe(value)}"
    if not value.strip():
        return f"empty or only whitespace ({value!r}); give every item a visible id"
    return text_problem(value)


def _image_problem(image: str, root: Path | None,
                   cache: dict[str, str | None] | None = None) -> str | None:
    """Why the image path is unusable, or ``None`` when it is fine."""
    pure = PurePosixPath(image.replace("\\", "/"))
    if pure.is_absolute() or image[1:2] == ":":
        return f"must be relative to the dataset folder, got absolute path {image!r}"
    if ".." in pure.parts:
        return f"must stay inside the dataset folder, got {image!r}"
    if root is None:
        return None
    key = str(pure)
    if cache is not None and key in cache:
        return cache[key]
    problem = _image_file_problem(root, pure)
    if cache is not None:
        cache[key] = problem
    return problem


def _image_file_problem(root: Path, relative: PurePosixPath) -> str | None:
    path = root / relative
    if not path.is_file():
        if path.is_symlink():
            return f"{str(relative)!r} is a broken symbolic link"
        return f"file {str(relative)!r} not found in {root}"
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        return (f"{str(relative)!r} is a symbolic link to {resolved}, outside the dataset "
                "folder; copy the image into the folder")
    return image_problem(path, str(relative))


def image_problem(path: Path, name: str | None = None) -> str | None:
    """Why the image file at ``path`` cannot be used, or ``None`` when it opens and decodes.

    Every pixel is decoded (a truncated file fails here, not in the middle of a run); an
    empty file, a file that is no image, and an image larger than PIL's decompression-bomb
    limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused.

    Args:
        path: The image file.
        name: How messages name it (default: ``path``).

    Returns:
        The problem, or None.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    name = name or str(path)
    try:
        if path.stat().st_size == 0:
            return f"{name!r} is an empty file (0 bytes); regenerate or replace the image"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return (f"{name!r} is too large to decode safely (more than "
                f"{Image.MAX_IMAGE_PIXELS} pixels: a decompression bomb?); use a smaller image")
    except UnidentifiedImageError:
        return f"{name!r} is not an image PIL can read (corrupt, or not an image file)"
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports broken files these ways
        return f"{name!r} is corrupt or truncated ({exc}); regenerate or replace the image"
    if width < 1 or height < 1:
        return f"{name!r} has no pixels ({width}x{height})"
    return None


def parse_jsonl(text: str, file: str, check: Callable[[Any, int], list[FieldError]],
                build: Callable[[dict[str, Any]], T]) -> tuple[list[T], list[FieldError]]:
    """Parse and validate the lines of a JSONL text, one record a line.

    The one reader of modprobe's line-per-record files (dataset and task items): blank
    lines are skipped, invalid JSON and duplicate ``id`` values are reported with their
    line, and every other check is ``check(record, line_number)``'s.

    Args:
        text: The file's text.
        file: Its name, for messages.
        check: The problems of one parsed record (an empty list when it is valid).
        build: The item of a valid record.

    Returns:
        The valid items and the problems of every line.
    """
    items: list[T] = []
    errors: list[FieldError] = []
    first_line_of_id: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(FieldError(file, number, None, f"not valid JSON ({exc.msg} at "
                                                          f"column {exc.colno})"))
            continue
        line_errors = check(record, number)
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            first = first_line_of_id.setdefault(record["id"], number)
            if first != number:
                line_errors.append(FieldError(file, number, "id", f"duplicate id "
                                              f"{record['id']!r} (first on line {first})"))
        errors.extend(line_errors)
        if not line_errors:
            items.append(build(record))
    return items, errors


def parse_items(text: str, root: Path | None, file: str = "items.jsonl",
                ) -> tuple[list[Item], list[FieldError]]:
    """Parse and validate the lines of an ``items.jsonl`` text.

    Args:
        text: The file's text.
        root: The dataset folder, to check the images (None: skip those checks).
        file: The file name used in the messages.

    Returns:
        The valid items and the problems of every line (blank lines are skipped).
    """
    image_cache: dict[str, str | None] = {}
    return parse_jsonl(text, file,
                       lambda record, number: check_record(record, number, root, file,
                                                           image_cache),
                       Item.from_record)
