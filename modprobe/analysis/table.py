"""The prediction-table format shared by `python -m modprobe.following` and the runner.

One row per item, columns (docs/science.md section 1):

==================  ========  ====================================================
column              required  meaning
==================  ========  ====================================================
``h_text``          yes       entropy H_t of the text-only answer (nats, >= 0)
``h_vision``        yes       entropy H_v of the vision-only answer (nats, >= 0)
``y_text``          yes       text-only answer Y_t (string or token id)
``y_vision``        yes       vision-only answer Y_v
``y_multi``         yes       answer with both modalities Y_m (empty = no answer)
``model``           no        model name; one analysis per model
``group``           no        item group (``conflict``, ``text_irrelevant``, ...)
``correct_text``    no        Y_t is correct (bool: true/false, 1/0, yes/no)
``correct_vision``  no        Y_v is correct
==================  ========  ====================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.errors import ModprobeError
from modprobe.io import table_path

REQUIRED_COLUMNS: tuple[str, ...] = ("h_text", "h_vision", "y_text", "y_vision", "y_multi")
OPTIONAL_COLUMNS: tuple[str, ...] = ("model", "group", "correct_text", "correct_vision")
ENTROPY_COLUMNS: tuple[str, ...] = ("h_text", "h_vision")
BOOL_COLUMNS: tuple[str, ...] = ("correct_text", "correct_vision")

#: Columns read as text, so that labels like ``0001`` and ``1`` stay distinct strings (an id
#: ``0001`` is not the number 1): the prediction table's and the runners' tables'. Absent
#: columns are ignored.
TEXT_COLUMNS: tuple[str, ...] = (
    "id", "group", "shape", "answer_vision", "answer_text", "cluster", "y_vision", "y_text",
    "y_multi", "condition", "top1_token", "candidate", "perturbation", "answer", "model")
#: Suffixes :func:`read_table` reads.
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".parquet", ".pq")

_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0"}


class TableError(ModprobeError, ValueError):
    """A prediction table is malformed; ``column`` and ``row`` locate the problem.

    Attributes:
        column: Offending column, or None.
        row: Offending row (the table's 0-based row position), or None.
    """

    def __init__(self, message: str, column: str | None = None, row: int | None = None):
        """Keep where the problem is.

        Args:
            message: The one-line error.
            column: The offending column, or None.
            row: The offending row (0-based position), or None.
        """
        super().__init__(message)
        self.column = column
        self.row = row


def read_table(path: str | Path, validate: bool = True,
               text: Iterable[str] = TEXT_COLUMNS) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet table (by file suffix): the one table reader of modprobe.

    Prediction tables and every table a runner writes are read with it. In CSV and TSV
    files an empty cell is missing, the strings ``NA`` or ``null`` are not, and the
    ``text`` columns stay strings. A run table asked for in one format and written in
    the other (``items.csv`` / ``items.parquet``) is found under either name.

    Args:
        path: ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` file.
        validate: Check it as a prediction table (see `validate_table`); off for other
            tables (a run's ``layers.csv``, ``attention.csv``, ...).
        text: Columns read as strings.

    Returns:
        The table (validated and normalised when ``validate``).

    Raises:
        TableError: On a missing file, an unknown suffix or invalid contents.
    """
    p = Path(path)
    if not p.is_file():
        p = table_path(p.parent, p.name)  # a run's items.csv written as items.parquet
    if not p.is_file():
        raise TableError(f"no such file: {path}")
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TableError(f"unsupported table format {suffix!r} of {p} (use .csv, .tsv or "
                         ".parquet)")
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            head = pd.read_csv(p, sep=sep, nrows=0).columns
            frame = pd.read_csv(p, sep=sep, keep_default_na=False, na_values=[""],
                                dtype={c: str for c in text if c in head})
    except ImportError as err:
        raise TableError(f"cannot read {p.name}: {err} (install pyarrow for parquet)") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:  # carry line information
        raise TableError(f"cannot read {p}: {err}") from None
    return validate_table(frame) if validate else frame


def _parse_bool(value: Any, column: str, row: int) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, (float, np.floating)) and value in (0.0, 1.0):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TableError(
        f"column {column!r}, row {row}: expected a boolean (true/false, 1/0, yes/no), "
        f"got {value!r}",
        column,
        row,
    )


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def validate_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a prediction table and return a normalised copy.

    Entropies must be finite, non-negative numbers; Y_t and Y_v must be present (Y_m
    may be empty: no answer, counted as 'other'); correctness columns must be booleans.
    Missing optional ``model``/``group`` columns are left absent. The index is reset to
    0..n-1, so error rows are 0-based positions in the table (line ``row + 2`` of a CSV
    with a header).

    Args:
        frame: The raw table.

    Returns:
        A copy with float entropy columns and bool correctness columns.

    Raises:
        TableError: Naming the column (and row) of the first problem.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TableError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise TableError(
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"a table needs {', '.join(REQUIRED_COLUMNS)}",
            missing[0],
        )
    out = frame.reset_index(drop=True).copy()
    if len(out) == 0:
        raise TableError("the table has no rows")
    for column in ENTROPY_COLUMNS:
        raw = out[column]
        numeric = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        bad = ~np.isfinite(numeric.to_numpy()) | (numeric.to_numpy() < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = raw.iloc[row]
            if _is_missing(value):
                problem = "is missing (NaN)"
            elif not np.isfinite(numeric.iloc[row]):
                problem = f"is not a finite number ({value!r})"
            else:
                problem = f"is negative ({value!r})"
            raise TableError(
                f"column {column!r}, row {row}: entropy {problem}; entropies must be "
                f"finite and >= 0 (nats)",
                column,
                row,
            )
        out[column] = numeric
    for column in ("y_text", "y_vision"):
        missing_rows = np.flatnonzero([_is_missing(v) for v in out[column]])
        if missing_rows.size:
            row = int(missing_rows[0])
            raise TableError(f"column {column!r}, row {row}: answer is missing", column, row)
    for column in BOOL_COLUMNS:
        if column in out.columns:
            out[column] = [_parse_bool(v, column, i) for i, v in enumerate(out[column])]
            out[column] = out[column].astype(bool)
    for column in ("model", "group"):
        if column in out.columns:
            missing_rows = np.flatnonzero([_is_missing(v) for v in out[column]])
            if missing_rows.size:
                row = int(missing_rows[0])
                raise TableError(f"column {column!r}, row {row}: value is missing", column, row)
            out[column] = out[column].astype(str)
    return out
