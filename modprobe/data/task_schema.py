"""The task-item schema: which fields a task item has, which values they take, and the checks.

:func:`task_item_problems` names every inconsistency of one item (built in memory or read
from a line of ``items.jsonl``), :func:`template_problem` what is wrong with a misleading
template, and :func:`check_task_record` every problem of one parsed line, with its line
number and field, for the validation report of :func:`modprobe.data.tasks.load_tasks`.
The schema is documented in ``docs/interference.md`` (Task items).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modprobe.data.choice import LETTERS
from modprobe.data.schema import (
    _TYPE_NAMES,
    FieldError,
    _describe,
    _image_problem,
    _type_ok,
    id_problem,
    text_problem,
)

if TYPE_CHECKING:
    from modprobe.data.tasks import TaskItem

#: Which modality carries the answer.
RELEVANT: tuple[str, ...] = ("image", "text")
#: Answer formats.
FORMATS: tuple[str, ...] = ("open", "choice")
#: Where the task schema is documented (named in validation errors).
SCHEMA_DOC = "docs/interference.md, Task items"

#: Fields every line of ``items.jsonl`` has, with their JSON types.
REQUIRED: dict[str, type] = {"id": str, "question": str, "answer": str, "relevant": str}
#: Fields a line may have, with their JSON types (any other field is kept as ``extra``).
OPTIONAL: dict[str, type] = {"image": str, "context": str, "options": list, "format": str,
                             "subject": str, "cluster": str, "task": str,
                             "misleading_template": str}


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
        elif len({option_key(o) for o in options}) != len(options):
            problems.append(("options", f"holds the same option twice: {options}"))
        elif len(options) > len(LETTERS):
            problems.append(("options", f"at most {len(LETTERS)} options"))
        elif option_key(get("answer") or "") not in {option_key(o) for o in options}:
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


def option_key(text: str) -> str:
    """The form under which two options (or an option and a gold answer) count as one.

    Case, runs of whitespace and surrounding punctuation are ignored: ``"Red."`` and
    ``" red"`` are the same option.

    Args:
        text: An option or answer.

    Returns:
        The comparison key.
    """
    return " ".join(str(text).casefold().split()).strip(".!?,;: ")


def check_task_record(record: Any, line: int, root: Path | None, file: str) -> list[FieldError]:
    """Every problem of one parsed line of a task ``items.jsonl``.

    Types are checked first; only a line whose fields all have the right types is checked
    for consistency (:func:`task_item_problems`) and for its image file.

    Args:
        record: The line's parsed JSON value.
        line: Its line number, for the messages.
        root: The task folder, to check that the image exists and opens (None: skip).
        file: The file name used in the messages.

    Returns:
        The problems (empty when the line is a valid item).
    """
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

