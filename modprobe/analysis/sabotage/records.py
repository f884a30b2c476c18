"""One line of agent outputs, checked field by field and normalised.

:func:`validate_record` is what :func:`modprobe.analysis.sabotage.input.agent_table` runs
on every line of a file (the fields are listed in :mod:`modprobe.analysis.sabotage.input`).
It notes every problem with its line and field instead of stopping at the first, so one
:class:`~modprobe.analysis.sabotage.input.SabotageInputError` can list them all.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from modprobe.analysis._arrays import normalize_answer
from modprobe.analysis.sabotage.replies import parse_reply

#: Fields every record must have (``labels`` and ``confidence`` may come from ``response``).
REQUIRED = ("item", "agent", "labels", "confidence", "gold")


def validate_record(line: int, rec: Any, errors: list[str],
                    unparsed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Check one record's fields and normalise them.

    Args:
        line: The record's line in its file (1-based), cited by every problem.
        rec: The parsed JSON value of the line.
        errors: Problems found so far; this record's are appended (``"line N, field
            'F': ..."``).
        unparsed: Self-assessment replies that could not be read; a record whose
            ``response`` is unreadable is appended here, not to ``errors``.

    Returns:
        ``item``, ``agent``, ``labels`` (normalised, best first), ``gold`` (normalised),
        ``numbers`` (the confidences as given, on their own scale), ``quality`` (a number
        or None) and the optional ``modality``, ``cluster`` and ``group`` (None when
        absent); or None when the record is left out (its problems noted).
    """
    where = f"line {line}"
    if not isinstance(rec, Mapping):
        errors.append(f"{where}: not a JSON object")
        return None
    rec = _with_parsed_reply(line, rec, unparsed)
    if rec is None:
        return None
    missing = [f for f in REQUIRED if f not in rec or rec[f] is None]
    for name in missing:
        fix = " (the right label of the item)" if name == "gold" else ""
        errors.append(f"{where}, field {name!r}: missing{fix}")
    if missing:
        return None
    item, agent = _text(rec["item"]), _text(rec["agent"])
    if item is None:
        errors.append(f"{where}, field 'item': must be a non-empty string or integer")
    elif _not_unicode(item):
        errors.append(f"{where}, field 'item': {_not_unicode(item)}")
        return None
    if agent is None:
        errors.append(f"{where}, field 'agent': must be a non-empty string")
    labels = _labels(where, rec["labels"], errors)
    gold = None if labels is None else _gold(where, rec["gold"], errors)
    numbers = None if gold is None else _confidences(where, rec["confidence"], labels, errors)
    if labels is None or gold is None or numbers is None:
        return None
    quality = rec.get("quality")
    if quality is not None:
        quality = _quality(where, quality, errors)
        if quality is None:
            return None
    optional = _optional_fields(where, rec, errors)
    if item is None or agent is None:
        return None
    return {"item": item, "agent": agent, "labels": labels, "gold": gold, "numbers": numbers,
            "quality": quality, **optional}


def _with_parsed_reply(line: int, rec: Mapping[str, Any],
                       unparsed: list[dict[str, Any]]) -> Mapping[str, Any] | None:
    """The record with ``labels`` and ``confidence`` read from its ``response``, if any.

    None when the reply cannot be read: it is noted in ``unparsed`` and left out, never
    guessed.
    """
    if "response" not in rec or (rec.get("labels") is not None
                                 and rec.get("confidence") is not None):
        return rec
    parsed = parse_reply(rec["response"])
    if parsed.problem:
        unparsed.append({"line": line, "item": rec.get("item"), "agent": rec.get("agent"),
                         "problem": parsed.problem, "response": str(rec["response"])})
        return None
    return {**rec, "labels": parsed.labels, "confidence": parsed.confidence}


def _labels(where: str, raw: Any, errors: list[str]) -> list[str] | None:
    """The ranked labels, normalised; None (after noting why) when they are unusable."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        errors.append(f"{where}, field 'labels': the agent gave no labels; give a list of "
                      "candidate labels, best first")
        return None
    labels = [normalize_answer(str(lab)) if isinstance(lab, (str, int))
              and not isinstance(lab, bool) else None for lab in raw]
    bad = [i for i, lab in enumerate(labels) if not lab]
    if bad:
        errors.append(f"{where}, field 'labels': entry {bad[0] + 1} is not a non-empty "
                      "string or an integer")
        return None
    dup = [lab for i, lab in enumerate(labels) if lab in labels[:i]]
    if dup:
        errors.append(f"{where}, field 'labels': {dup[0]!r} is listed twice")
        return None
    return [str(lab) for lab in labels]


def _gold(where: str, raw: Any, errors: list[str]) -> str | None:
    """The gold label, normalised; None (after noting why) when it is missing or empty."""
    gold = normalize_answer(str(raw)) if isinstance(raw, (str, int)) and \
        not isinstance(raw, bool) else None
    if gold is None or gold == "":
        errors.append(f"{where}, field 'gold': missing or empty (the right label of the item)")
        return None
    return str(gold)


def _confidences(where: str, conf: Any, labels: list[str],
                 errors: list[str]) -> list[float] | None:
    """The confidences as numbers, checked against the labels and the known scales."""
    numbers = [_number(c) for c in (conf if isinstance(conf, list) else [conf])]
    if not numbers or any(c is None or not math.isfinite(c) for c in numbers):
        errors.append(f"{where}, field 'confidence': must be a number or a list of numbers")
        return None
    values = [float(c) for c in numbers if c is not None]
    if isinstance(conf, list) and len(values) != len(labels):
        errors.append(f"{where}, field 'confidence': {len(values)} values for "
                      f"{len(labels)} labels; give one number (top label) or one per label")
        return None
    outside = [c for c in values if not 0.0 <= c <= 100.0]
    if outside:
        errors.append(f"{where}, field 'confidence': {outside[0]:g} is outside any known "
                      "scale (0-1 or 1-100)")
        return None
    if any(b > a for a, b in itertools.pairwise(values)):
        errors.append(f"{where}, field 'confidence': increases along the ranked labels; "
                      "list labels best first with their confidences aligned")
        return None
    return values


def _quality(where: str, quality: Any, errors: list[str]) -> float | None:
    """The self-reported quality as a number; None (after noting why) when it is not one."""
    q = _number(quality)
    if q is None or not math.isfinite(q) or not 0.0 <= q <= 100.0:
        errors.append(f"{where}, field 'quality': {quality!r} is not a number on a known "
                      "scale (0-1 or 1-100)")
        return None
    return q


def _optional_fields(where: str, rec: Mapping[str, Any],
                     errors: list[str]) -> dict[str, str | None]:
    """``modality``, ``cluster`` and ``group`` as text (None when absent or unusable)."""
    optional = {}
    for name in ("modality", "cluster", "group"):
        value = rec.get(name)
        if value is not None and _text(value) is None:
            errors.append(f"{where}, field {name!r}: must be a non-empty string")
        optional[name] = _text(value) if value is not None else None
    return optional


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _not_unicode(text: str) -> str | None:
    from modprobe.data.schema import text_problem  # lazily: modprobe.data imports Pillow

    return text_problem(text)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)) and str(value).strip():
        return str(value).strip()
    return None
