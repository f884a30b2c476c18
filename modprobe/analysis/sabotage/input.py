"""Agent outputs for the sabotage analysis: the JSONL format, its validator, the scales.

One JSON object per line, one line per item and agent (docs/science.md section 3)::

    {"item": "q17", "agent": "vision", "labels": ["joy", "surprise", "neutral"],
     "confidence": [82, 10, 5], "quality": 0.9, "gold": "joy"}

==============  ========  ==========================================================
field           required  meaning
==============  ========  ==========================================================
``item``        yes       item id (string or integer)
``agent``       yes       agent name; ``joint`` is the model given every modality
``labels``      yes       candidate labels, best first (a list, or one string)
``confidence``  yes       one number (for the top label) or a list aligned with
                          ``labels``; on a 0-1 or a 1-100 scale (see below)
``response``    no        instead of ``labels`` and ``confidence``: the model's raw reply
                          to `SELF_ASSESSMENT_PROMPT` (`modprobe.analysis.sabotage.replies`);
                          an unreadable reply is reported and left out, never guessed
``gold``        yes       the right label (the same on every line of an item)
``quality``     no        the agent's self-reported data quality (same scales);
                          the fusion weight under ``weights="quality"``
``modality``    no        the agent's modality (default: the agent's name); rates
                          are also reported per modality
``cluster``     no        cluster label of the item (items that share a source):
                          intervals resample whole clusters
``group``       no        item group; rates are also reported per group
==============  ========  ==========================================================

Labels and gold are compared after `modprobe.analysis.normalize_answer` (``" Joy."`` is
``joy``). **Scales**: each agent's confidences (and, separately, its qualities) are on
one scale, found from its values: all in [0, 1] is the 0-1 scale; otherwise all in
[0, 100] is the 1-100 scale and values are divided by 100; anything below 0 or above 100
is an error. ``scale="unit"`` or ``"percent"`` forces one scale for every agent.
A list of confidences must not increase along the ranked labels.

Every problem of a file is found before anything is computed, and reported with its
line and field in one :class:`SabotageInputError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.sabotage.records import REQUIRED, validate_record

__all__ = [
    "COLUMNS",
    "FUSION",
    "JOINT",
    "MAX_LISTED",
    "MEASURES",
    "PERCENT",
    "REQUIRED",
    "SCALES",
    "UNIT",
    "AgentOutputs",
    "SabotageInputError",
    "agent_table",
    "read_agent_jsonl",
]

#: Rates the sabotage analysis reports per agent, per modality and per group.
MEASURES = ("potential_sabotage", "successful_sabotage", "wrong_agent_fused",
            "wrong_agent_joint", "accuracy", "contributions", "correct_agent_fused")
#: The name of the late fusion among the agents of a report's tables.
FUSION = "fusion"
#: The agent that saw every modality at once (the model's own fusion).
JOINT = "joint"
#: Scale names as reported.
UNIT, PERCENT = "0-1", "1-100"
SCALES = ("auto", "unit", "percent")
#: Columns of an agent table (one row per item x agent x ranked label).
COLUMNS = ("item", "agent", "modality", "rank", "label", "score", "quality", "gold",
           "cluster", "group", "line")
#: How many problems the error message lists.
MAX_LISTED = 20


class SabotageInputError(ValueError):
    """Agent outputs are malformed; ``errors`` lists every problem (line and field)."""

    def __init__(self, source: str, errors: list[str]) -> None:
        """Keep every problem and list the first :data:`MAX_LISTED` in the message.

        Args:
            source: The file or run the outputs came from.
            errors: Every problem, each with its line and field.
        """
        self.source = source
        self.errors = list(errors)
        listed = "\n".join(f"  {e}" for e in self.errors[:MAX_LISTED])
        more = len(self.errors) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        head = self.errors[0] if len(self.errors) == 1 else \
            f"{len(self.errors)} problems, first: {self.errors[0]}"
        super().__init__(f"{source}: {head}" + (f"\n{listed}{tail}" if len(self.errors) > 1
                                                 else ""))


@dataclass(frozen=True)
class AgentOutputs:
    """Validated agent outputs.

    Attributes:
        table: One row per item x agent x ranked label, columns `COLUMNS`; ``rank`` is
            1-based, ``score`` the normalised confidence S_m(label) in [0, 1] (with one
            confidence c for the top label, the other listed labels get (1 - c) / their
            count), ``quality`` normalised (NaN if absent).
        scales: Per agent, the confidence scale found (``"0-1"`` or ``"1-100"``).
        quality_scales: Per agent with qualities, their scale.
        source: Where the outputs came from (a file, a run folder).
        notes: What the reader decided that a user should know (fallbacks, choices).
        unparsed: Self-assessment replies that could not be read (``line, item, agent,
            problem, response``); they are not in ``table``.
    """

    table: pd.DataFrame
    scales: dict[str, str]
    quality_scales: dict[str, str] = field(default_factory=dict)
    source: str = "records"
    notes: tuple[str, ...] = ()
    unparsed: tuple[dict[str, Any], ...] = ()

    @property
    def agents(self) -> list[str]:
        """Agent names in order of first appearance."""
        return list(dict.fromkeys(self.table["agent"]))


def _find_scale(values: list[float], forced: str) -> str | None:
    """The scale of an agent's values; None when they fit no known scale."""
    if forced == "unit":
        return UNIT if all(0.0 <= v <= 1.0 for v in values) else None
    if forced == "percent":
        return PERCENT if all(0.0 <= v <= 100.0 for v in values) else None
    if all(0.0 <= v <= 1.0 for v in values):
        return UNIT
    if all(0.0 <= v <= 100.0 for v in values):
        return PERCENT
    return None


def _label_rows(got: dict[str, Any], line: int) -> list[dict[str, Any]]:
    """Agent-table rows of one validated record: one per ranked label."""
    item, agent, gold = got["item"], got["agent"], got["gold"]
    numbers, quality = got["numbers"], got["quality"]
    out: list[dict[str, Any]] = []
    for rank, label in enumerate(got["labels"], start=1):
        out.append({"item": item, "agent": agent,
                     "modality": got["modality"] or agent, "rank": rank,
                     "label": str(label),
                     "score": float(numbers[rank - 1]) if rank <= len(numbers)  # type: ignore[arg-type]
                     else np.nan,
                     "quality": np.nan if quality is None else float(quality),
                     "gold": gold, "cluster": got["cluster"],
                     "group": got["group"], "line": line})
    return out


def _scales_and_notes(raw_conf: dict[str, list[tuple[int, float]]],
                      raw_quality: dict[str, list[tuple[int, float]]],
                      raw_top: dict[str, list[tuple[int, float]]], scale: str,
                      errors: list[str], unparsed: list[dict[str, Any]],
                      ) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Each agent's confidence and quality scale, and the notes a reader should see."""
    scales: dict[str, str] = {}
    quality_scales: dict[str, str] = {}
    for found, raw, name in ((scales, raw_conf, "confidence"),
                             (quality_scales, raw_quality, "quality")):
        for agent, pairs in raw.items():
            got = _find_scale([v for _, v in pairs], scale)
            if got is None:
                wanted = {"unit": "0-1", "percent": "1-100"}.get(scale, "0-1 or 1-100")
                line = next(ln for ln, v in pairs if not 0.0 <= v <= (1.0 if scale == "unit"
                                                                      else 100.0))
                errors.append(f"line {line}, field {name!r}: outside the {wanted} scale of "
                              f"agent {agent!r}")
                continue
            found[agent] = got
    notes = []
    for agent, pairs in raw_conf.items():
        # A top confidence below 1 on the 1-100 scale is more likely a 0-1 value in a file
        # that mixes scales than a 0.9% belief: say so rather than guess.
        odd = [ln for ln, v in raw_top.get(agent, []) if 0.0 < v < 1.0]
        if scale == "auto" and scales.get(agent) == PERCENT and odd:
            notes.append(f"agent {agent!r} is on the 1-100 scale but {len(odd)} top "
                         f"confidences are below 1 (first on line {odd[0]}): mixed scales? "
                         "pass --scale, or fix those lines")
    if unparsed:
        first = unparsed[0]
        notes.append(f"{len(unparsed)} self-assessment replies could not be read (first: line "
                     f"{first['line']}, {first['problem']}); they are left out, never guessed "
                     "(unparsed.csv)")
    return scales, quality_scales, notes


def agent_table(records: Iterable[tuple[int, Mapping[str, Any]]], source: str = "records",
                scale: str = "auto") -> AgentOutputs:
    """Validate agent outputs and turn them into an agent table.

    Args:
        records: ``(line, record)`` pairs; ``line`` is what errors cite (1-based).
        source: Name used in error messages (a file path).
        scale: ``auto`` (per agent, from its values), ``unit`` (0-1) or ``percent`` (1-100).

    Returns:
        The :class:`AgentOutputs`.

    Raises:
        SabotageInputError: every problem found, each with its line and field.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    gold_of: dict[str, tuple[str, int]] = {}
    raw_conf: dict[str, list[tuple[int, float]]] = {}
    raw_quality: dict[str, list[tuple[int, float]]] = {}
    raw_top: dict[str, list[tuple[int, float]]] = {}
    unparsed: list[dict[str, Any]] = []

    for line, rec in records:
        got = validate_record(line, rec, errors, unparsed)
        if got is None:
            continue
        where = f"line {line}"
        item, agent, gold = got["item"], got["agent"], got["gold"]
        numbers, quality = got["numbers"], got["quality"]
        key = (item, agent)
        if key in seen:
            errors.append(f"{where}, fields 'item', 'agent': a second line for item {item!r} and "
                          f"agent {agent!r} (first on line {seen[key]}); keep one")
            continue
        seen[key] = line
        if item in gold_of and gold_of[item][0] != gold:
            errors.append(f"{where}, field 'gold': {gold!r} but line {gold_of[item][1]} gives "
                          f"{gold_of[item][0]!r} for item {item!r}; an item has one gold label")
            continue
        gold_of.setdefault(item, (gold, line))
        raw_conf.setdefault(agent, []).extend((line, float(c)) for c in numbers)  # type: ignore[arg-type]
        raw_top.setdefault(agent, []).append((line, float(numbers[0])))  # type: ignore[arg-type]
        if quality is not None:
            raw_quality.setdefault(agent, []).append((line, float(quality)))
        rows.extend(_label_rows(got, line))

    scales, quality_scales, notes = _scales_and_notes(raw_conf, raw_quality, raw_top, scale,
                                                      errors, unparsed)
    if not rows and not errors:
        errors.append("no agent outputs (the file is empty)" if not unparsed else
                      f"no readable agent outputs ({len(unparsed)} replies unreadable, first: "
                      f"line {unparsed[0]['line']}: {unparsed[0]['problem']})")
    if errors:
        raise SabotageInputError(source, errors)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for column, found in (("score", scales), ("quality", quality_scales)):
        divide = table["agent"].map(lambda a, f=found: 100.0 if f.get(a) == PERCENT else 1.0)
        table[column] = table[column] / divide
    table["score"] = _spread_rest(table)
    return AgentOutputs(table=table, scales=scales, quality_scales=quality_scales,
                        source=source, notes=tuple(notes), unparsed=tuple(unparsed))


def _spread_rest(table: pd.DataFrame) -> pd.Series:
    """S_m(y) of the labels after the top one when the agent gave one confidence c.

    The agent said only how sure it is of its top label; the rest of its belief, 1 - c, is
    spread evenly over the other labels it listed, so they can still enter the fused
    top-k, below the top label whenever c >= 1 - c over their count.
    """
    score = table["score"].copy()
    missing = score.isna()
    if missing.any():
        keys = [table["item"], table["agent"]]
        top = table["score"].where(table["rank"] == 1).groupby(keys).transform("max")
        rest = missing.groupby(keys).transform("sum")
        score[missing] = ((1.0 - top) / rest)[missing]
    return score


def read_agent_jsonl(path: str | Path, scale: str = "auto") -> AgentOutputs:
    """Read and validate a JSONL file of agent outputs (see the module docstring).

    Args:
        path: The JSONL file.
        scale: ``auto``, ``unit`` or ``percent``, as in :func:`agent_table`.

    Returns:
        The validated :class:`AgentOutputs`.

    Raises:
        SabotageInputError: a line that is not JSON, or any problem of `agent_table`.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    records: list[tuple[int, Any]] = []
    errors: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        problem = f"not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8"
        raise SabotageInputError(str(path), [problem]) from None
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            records.append((line_no, json.loads(text)))
        except json.JSONDecodeError as err:
            errors.append(f"line {line_no}: not valid JSON ({err.msg})")
    if errors:
        raise SabotageInputError(str(path), errors)
    return agent_table(records, source=str(path), scale=scale)
