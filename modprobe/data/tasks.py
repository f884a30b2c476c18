"""Task items for modality interference: open answer and multiple choice.

A *task item* asks one question whose answer lies in one modality, the ``relevant``
one (``"image"``: an image-heavy task such as classification; ``"text"``: a text-heavy
task such as reading a description). The interference study perturbs only the other
modality (``modprobe.perturb``) and counts how often the answer changes.

Two formats:

- **open answer** (``options`` absent, or present but not shown): the answer is compared
  with the gold one after :func:`modprobe.answers.normalize_answer`;
- **multiple choice** (``format="choice"``): the options are listed in the prompt as
  ``A. red`` ... and an answer is read as the option letter *or* the option's word, both
  mapped to one option (:func:`read_choice`). An answer naming no option, or two
  different ones, is *unreadable*: its own category, never silently right or wrong.

On disk a task folder is ``items.jsonl`` (+ the images it names + optional
``dataset.json``), one JSON object per line; see ``docs/interference.md``. Validation
reports every problem at once with line and field, as the conflict schema does.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from modprobe.data.choice import LETTERS, format_choices, read_choice
from modprobe.data.dataset import read_info
from modprobe.data.schema import (
    _TYPE_NAMES,
    DatasetError,
    FieldError,
    _describe,
    _image_problem,
    _type_ok,
    id_problem,
    parse_jsonl,
    text_problem,
)
from modprobe.io import write_bytes

#: Which modality carries the answer.
RELEVANT: tuple[str, ...] = ("image", "text")
#: Answer formats.
FORMATS: tuple[str, ...] = ("open", "choice")
#: The category of an answer that names no option, or two different ones.
UNREADABLE = "unreadable"
#: Where the task schema is documented (named in validation errors).
SCHEMA_DOC = "docs/interference.md, Task items"

REQUIRED: dict[str, type] = {"id": str, "question": str, "answer": str, "relevant": str}
OPTIONAL: dict[str, type] = {"image": str, "context": str, "options": list, "format": str,
                             "subject": str, "cluster": str, "task": str,
                             "misleading_template": str}


@dataclass
class TaskItem:
    """One question of an image-heavy or text-heavy task.

    Attributes:
        id: Unique id within its task set.
        question: The question (without the option list; :meth:`question_text` adds it).
        answer: The gold answer; for multiple choice, the text of one option.
        relevant: ``"image"`` or ``"text"``: the modality that holds the answer.
        image: The image, or None (a text-heavy item's clean input usually has none).
        context: Text shown before the question, or None.
        options: The answer options (shown in the prompt when ``format == "choice"``;
            for open answers, the answer space a misleading description draws from).
        format: ``"open"`` or ``"choice"``.
        subject: The object the question asks about (generated irrelevant images never
            draw it).
        cluster: Items with one label were made together (one group, one source image);
            intervals resample whole clusters.
        task: A name for the task, e.g. ``"color"``.
        misleading_template: How a misleading description names an option, with
            ``{option}`` (and ``{subject}``); default ``"This image shows {option}."``.
        perturbation: ``"clean"``, or the name of the perturbation that made this item.
        image_file: Path of the image relative to the task folder, if loaded from disk.
        extra: Every other field of the line.
    """

    id: str
    question: str
    answer: str
    relevant: str
    image: Image.Image | None = None
    context: str | None = None
    options: list[str] | None = None
    format: str = "open"
    subject: str | None = None
    cluster: str | None = None
    task: str = ""
    misleading_template: str | None = None
    perturbation: str = "clean"
    image_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse an item whose fields break the task schema (the first problem named)."""
        problems = task_item_problems(self)
        if problems:
            name, message = problems[0]
            raise ValueError(f"task item {self.id!r}, field {name!r}: {message}")

    # ------------------------------------------------------------------ prompts
    def question_text(self) -> str:
        """The question as shown: for multiple choice, followed by ``A. ...`` lines."""
        if self.format != "choice":
            return self.question
        return format_choices(self.question, self.options or [])

    def prompt(self) -> Any:
        """The model input (:class:`modprobe.adapters.Prompt`): image, context, question."""
        from modprobe.adapters.base import Prompt

        return Prompt(self.question_text(), context=self.context or None,
                      images=[self.image] if self.image is not None else [])

    def replaced(self, **changes: Any) -> TaskItem:
        """A copy with some fields changed (``dataclasses.replace``, ``extra`` copied)."""
        changes.setdefault("extra", dict(self.extra))
        return replace(self, **changes)

    # ------------------------------------------------------------------ answers
    def read(self, answer: Any, aliases: Mapping[str, int] | None = None) -> str:
        """The category of a model's answer.

        Args:
            answer: The model's reply.
            aliases: As in :func:`read_choice` (multiple choice only).

        Returns:
            The option it names (its text) for multiple choice, else the normalised
            answer; :data:`UNREADABLE` when none can be read.
        """
        from modprobe.answers import normalize_answer

        if self.format == "choice":
            index = read_choice(answer, self.options or [], aliases)
            return UNREADABLE if index is None else self.options[index]  # type: ignore[index]
        text = normalize_answer(answer)
        return text if isinstance(text, str) and text else UNREADABLE

    def gold(self) -> str:
        """The gold answer as a category (comparable with :meth:`read`)."""
        from modprobe.answers import normalize_answer

        if self.format == "choice":
            return next(o for o in self.options or [] if _key(o) == _key(self.answer))
        return str(normalize_answer(self.answer))

    def target(self) -> str:
        """The answer a model should give (a training target).

        The gold option's letter for multiple choice, the gold answer otherwise.
        """
        if self.format == "choice":
            return LETTERS[(self.options or []).index(self.gold())]
        return self.answer

    def to_record(self) -> dict[str, Any]:
        """The JSON object of this item (images by path; ``image_file`` must be set)."""
        record: dict[str, Any] = {"id": self.id, "question": self.question,
                                  "answer": self.answer, "relevant": self.relevant}
        optional = {"image": self.image_file, "context": self.context, "options": self.options,
                    "format": self.format if self.format != "open" else None,
                    "subject": self.subject, "cluster": self.cluster, "task": self.task or None,
                    "misleading_template": self.misleading_template}
        record.update({k: v for k, v in optional.items() if v is not None})
        record.update(self.extra)
        return record


def seeded_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A numpy Generator that depends only on ``seed`` and ``keys``.

    Strings are hashed with SHA-256, never Python's salted ``hash``, so the stream is the
    same in every process and on every platform.

    Args:
        seed: The base seed.
        *keys: What the stream is for (an item id, a perturbation name, a draw).

    Returns:
        The generator.
    """
    words = [int(seed)]
    for key in keys:
        digest = hashlib.sha256(str(key).encode("utf-8")).digest()
        words += [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence(words))


def task_item_problems(item: TaskItem | Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` for every inconsistency of an item (empty when it is fine)."""
    get = item.get if isinstance(item, Mapping) else (lambda k, d=None: getattr(item, k, d))
    problems: list[tuple[str, str]] = []
    problem = id_problem(get("id"))
    if problem:
        problems.append(("id", problem))
    problems += [(name, text_problem(get(name)))  # type: ignore[misc]
                 for name in ("question", "answer", "context", "subject", "cluster", "task",
                              "misleading_template")
                 if isinstance(get(name), str) and text_problem(get(name))]
    relevant, fmt, options = get("relevant"), get("format") or "open", get("options")
    if relevant not in RELEVANT:
        problems.append(("relevant", f"unknown value {relevant!r}; use image or text"))
    if fmt not in FORMATS:
        problems.append(("format", f"unknown value {fmt!r}; use open or choice"))
    if options is not None:
        if not options or not all(isinstance(o, str) and o.strip() for o in options):
            problems.append(("options", "must be a non-empty list of non-empty strings"))
        elif len({_key(o) for o in options}) != len(options):
            problems.append(("options", f"holds the same option twice: {options}"))
        elif len(options) > len(LETTERS):
            problems.append(("options", f"at most {len(LETTERS)} options"))
        elif _key(get("answer") or "") not in {_key(o) for o in options}:
            problems.append(("answer", (f"gold answer {get('answer')!r} is not among the "
                                       f"options {options}; the gold must be one of them")))
    if fmt == "choice" and options is None:
        problems.append(("options", "a multiple-choice item needs its options"))
    has_image = get("image") is not None or get("image_file") is not None
    if relevant == "image" and not has_image:
        problems.append(("image", ("missing, but the relevant modality is image: an "
                                  "image-heavy item needs its image")))
    if relevant == "text" and not (get("context") or "").strip():
        problems.append(("context", ("missing or empty, but the relevant modality is text: a "
                                    "text-heavy item needs its description")))
    template = get("misleading_template")
    if template is not None:
        problem = template_problem(template)
        if problem:
            problems.append(("misleading_template", problem))
    return problems


#: The fields a misleading template may name.
TEMPLATE_FIELDS: tuple[str, ...] = ("option", "subject")


def template_problem(template: str) -> str | None:
    """What is wrong with a misleading template, or None when it formats.

    A brace without its pair, a field other than ``{option}`` and ``{subject}``, or no
    ``{option}`` at all.
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template)
                 if name is not None]
    except ValueError as err:
        return (f"{template!r} is not a template ({err}); write a literal brace twice "
                "({{ or }})")
    unknown = [name for name in names if name not in TEMPLATE_FIELDS]
    if unknown:
        return (f"{template!r} names the unknown field {{{unknown[0]}}}; use only {{option}} "
                "(the wrong option) and {subject} (the asked object)")
    if "option" not in names:
        return "must contain {option}"
    try:
        template.format(option="red", subject="circle")
    except (ValueError, TypeError) as err:  # a bad conversion or format spec: {option!x}
        return f"{template!r} does not format ({err}); write {{option}} and {{subject}} plainly"
    return None


def _key(text: str) -> str:
    return " ".join(str(text).casefold().split()).strip(".!?,;: ")


# ------------------------------------------------------------------ task folders
@dataclass
class TaskSet:
    """A validated task folder.

    Attributes:
        root: The folder (None for a set built in memory).
        items: The items, in file order; images are opened by :meth:`open`.
        info: ``dataset.json`` (empty when absent).
    """

    root: Path | None
    items: list[TaskItem]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of items."""
        return len(self.items)

    def __iter__(self) -> Iterator[TaskItem]:
        """The items, in file order."""
        return iter(self.items)

    def open(self, item: TaskItem) -> TaskItem:
        """The item with its image loaded (RGB); unchanged when it has none or has it."""
        if item.image is not None or item.image_file is None or self.root is None:
            return item
        path = self.root / PurePosixPath(item.image_file.replace("\\", "/"))
        with Image.open(path) as image:
            return item.replaced(image=image.convert("RGB"))


def parse_tasks(text: str, root: Path | None, file: str = "items.jsonl",
                ) -> tuple[list[TaskItem], list[FieldError]]:
    """Parse and validate the lines of a task ``items.jsonl``.

    Args:
        text: The file's text.
        root: The task folder, to check the images (None: skip those checks).
        file: The file name used in the messages.

    Returns:
        The valid items and the problems of every line.
    """
    return parse_jsonl(text, file, lambda record, number: _check_record(record, number, root,
                                                                        file),
                       _from_record)


def _check_record(record: Any, line: int, root: Path | None, file: str) -> list[FieldError]:
    if not isinstance(record, dict):
        return [FieldError(file, line, None, f"expected a JSON object, got {_describe(record)}")]
    errors: list[FieldError] = []
    for name, expected in {**REQUIRED, **OPTIONAL}.items():
        if name not in record:
            if name in REQUIRED:
                errors.append(FieldError(file, line, name, "missing"))
            continue
        if not _type_ok(record[name], expected):
            errors.append(FieldError(file, line, name, f"expected {_TYPE_NAMES[expected]}, "
                                                       f"got {_describe(record[name])}"))
    if errors:
        return errors
    errors += [FieldError(file, line, name, f"item {record['id']!r}: {message}"
                          if name == "misleading_template" else message)
               for name, message in task_item_problems(record)]
    if "image" in record:
        problem = _image_problem(record["image"], root)
        if problem:
            errors.append(FieldError(file, line, "image", problem))
    return errors


def _from_record(record: dict[str, Any]) -> TaskItem:
    known = {"id", "question", "answer", "relevant", "context", "options", "format",
             "subject", "cluster", "task", "misleading_template"}
    fields_ = {k: record[k] for k in known if k in record}
    extra = {k: v for k, v in record.items() if k not in known and k != "image"}
    return TaskItem(**fields_, image_file=record.get("image"), extra=extra)


def load_tasks(root: str | Path) -> TaskSet:
    """Load and validate a task folder (``items.jsonl`` + images).

    Raises:
        DatasetError: listing every problem (line, field, message).
    """
    root = Path(root)
    path = root / "items.jsonl"
    if not path.is_file():
        raise DatasetError(root, [FieldError("items.jsonl", 0, None,
                                             f"not found in {root}; a task folder needs "
                                             "items.jsonl")], schema=SCHEMA_DOC)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(root, [FieldError("items.jsonl", 0, None, (
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
        )], schema=SCHEMA_DOC) from None
    if _is_conflict_dataset(text):
        raise DatasetError(root, [FieldError("items.jsonl", 0, None, (
            "holds a conflict dataset (answer_vision/answer_text, for python -m "
            "modprobe.layers), not interference task items; write tasks with python -m "
            "modprobe.data tasks, or give each item answer and relevant fields"))],
            schema=SCHEMA_DOC)
    items, errors = parse_tasks(text, root)
    if not errors and not items:
        errors.append(FieldError("items.jsonl", 0, None, "holds no items"))
    info, info_errors = read_info(root)
    errors = info_errors + errors
    if errors:
        raise DatasetError(root, errors, schema=SCHEMA_DOC)
    return TaskSet(root, items, info)


def _is_conflict_dataset(text: str) -> bool:
    """Whether the first record looks like the conflict schema rather than a task item."""
    for line in text.splitlines():
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return False
            return (isinstance(record, dict) and "answer_vision" in record
                    and "relevant" not in record and "answer" not in record)
    return False


def write_tasks(root: str | Path, items: Sequence[TaskItem], info: dict[str, Any]) -> Path:
    """Write ``items.jsonl`` and ``dataset.json``, each atomically.

    Images must already be in place, so a folder with an ``items.jsonl`` is complete.

    Args:
        root: The task folder.
        items: The items, in file order.
        info: The folder's description; per-kind counts are added.

    Returns:
        The path of ``items.jsonl``.
    """
    root = Path(root)
    lines = "".join(json.dumps(item.to_record(), ensure_ascii=False) + "\n" for item in items)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.relevant] = counts.get(item.relevant, 0) + 1
    info = {**info, "n_items": len(items), "n_items_by_relevant": counts}
    write_bytes(root / "dataset.json", (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    write_bytes(root / "items.jsonl", lines.encode("utf-8"))
    return root / "items.jsonl"
