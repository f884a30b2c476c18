"""Prediction tables of the interference analysis: checked, answers read into categories.

A prediction table has one row per item and condition (``id, perturbation, answer, gold
[, cluster] [, options] [, relevant] [, draw]``); :func:`read_predictions` refuses one
that cannot be analysed with a message naming the column or row, and reads each answer
into the option it names (:mod:`modprobe.analysis.interference.effects` analyses it).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

CLEAN = "clean"
UNREADABLE = "unreadable"
#: Columns a prediction table must have.
TABLE_COLUMNS: tuple[str, ...] = ("id", "perturbation", "answer", "gold")


class InterferenceTableError(ValueError):
    """A prediction table cannot be analysed (the message names the column or row)."""



def read_predictions(table: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """Check a prediction table and read its answers into categories.

    Adds ``category`` (the option an answer names, or the normalised answer, or
    ``unreadable``), ``gold_category`` and ``correct``. With an ``options`` column
    (options separated by ``|``) answers are read as multiple choice (letter or word,
    :func:`modprobe.data.tasks.read_choice`).

    Args:
        table: The prediction table (columns above).
        source: What the table is, in error messages (a file name).

    Returns:
        A copy of the table with ``category``, ``gold_category`` and ``correct``.

    Raises:
        InterferenceTableError: a missing column, an empty id, a duplicated (id,
            perturbation), a perturbed item without a clean row, or a multiple-choice gold
            answer not among its options.
    """
    from modprobe.analysis import normalize_answer
    from modprobe.data.choice import read_choice

    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InterferenceTableError(f"{source}: missing column(s) {', '.join(missing)}; a "
                                     "prediction table needs id, perturbation, answer, gold "
                                     "(optional: cluster, options, relevant)")
    frame = table.copy()
    _check_cells(frame, source)
    frame["id"] = frame["id"].astype(str)
    frame["perturbation"] = _perturbation_names(frame["perturbation"])
    _check_rows(frame, source)
    categories, golds = [], []
    for row_number, row in enumerate(frame.itertuples(index=False), start=2):
        options = getattr(row, "options", None)
        if isinstance(options, str) and options.strip():
            listed = [o.strip() for o in options.split("|") if o.strip()]
            gold = _gold_index(row.gold, listed)
            if gold is None:
                raise InterferenceTableError(
                    f"{source} row {row_number} (id {row.id!r}): gold answer {row.gold!r} is "
                    f"not among the options {listed}; the gold must be one option (its word "
                    "or its letter)")
            index = read_choice(row.answer, listed)
            categories.append(UNREADABLE if index is None else listed[index])
            golds.append(listed[gold])
        else:
            answer = normalize_answer(row.answer)
            categories.append(answer if isinstance(answer, str) and answer else UNREADABLE)
            golds.append(str(normalize_answer(row.gold)))
    frame["category"] = categories
    frame["gold_category"] = golds
    frame["correct"] = frame["category"] == frame["gold_category"]
    return frame


def _gold_index(gold: Any, options: list[str]) -> int | None:
    """The option the gold answer is: its text, or its letter; None when neither."""
    from modprobe.analysis import normalize_answer
    from modprobe.data.choice import LETTERS

    key = normalize_answer(gold)
    for i, option in enumerate(options):
        if normalize_answer(option) == key:
            return i
    text = str(gold).strip()
    if len(text) == 1 and text.upper() in LETTERS[:len(options)]:
        return LETTERS.index(text.upper())
    return None


def _check_cells(frame: pd.DataFrame, source: str) -> None:
    """Refuse an empty or blank id, perturbation or gold cell, naming its row.

    Row 1 is the header; an empty *answer* is a valid (unreadable) answer.
    """
    for column in ("id", "perturbation", "gold"):
        for index, value in enumerate(frame[column]):
            if value is None or (isinstance(value, float) and math.isnan(value)) \
                    or not str(value).strip():
                raise InterferenceTableError(
                    f"{source} row {index + 2}: column {column} is empty; every row needs "
                    f"its {column} (clean rows have perturbation 'clean')")


def _perturbation_names(column: pd.Series) -> list[str]:
    """Perturbation names as the model form spells them.

    A registered name in its own case (``md`` -> ``MD``), ``clean`` in lower case, any
    other name in its first spelling (``Blur`` and ``blur`` are one).
    """
    from modprobe.perturb import canonical_name

    first: dict[str, str] = {CLEAN: CLEAN}
    names = []
    for value in column:
        name = canonical_name(str(value))
        names.append(first.setdefault(name.casefold(), name))
    return names


def _check_rows(frame: pd.DataFrame, source: str) -> None:
    keys = ["id", "draw"] if "draw" in frame.columns else ["id"]
    duplicated = frame.duplicated([*keys, "perturbation"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        where = f" in draw {row['draw']}" if "draw" in keys else ""
        raise InterferenceTableError(f"{source}: id {row['id']!r} has two rows for "
                                     f"perturbation {row['perturbation']!r}{where}")
    clean_keys = set(map(tuple, frame.loc[frame["perturbation"] == CLEAN, keys].to_numpy()))
    if not clean_keys:
        raise InterferenceTableError(f"{source}: no clean rows (perturbation 'clean'); the flip "
                                     "rate compares every perturbed answer with its clean one")
    perturbed = frame.loc[frame["perturbation"] != CLEAN, keys]
    orphans = [k for k in map(tuple, perturbed.to_numpy()) if k not in clean_keys]
    if orphans:
        where = f" in draw {orphans[0][1]}" if "draw" in keys else ""
        raise InterferenceTableError(f"{source}: id {orphans[0][0]!r} has perturbed rows but "
                                     f"no clean row{where}")
