"""The one normaliser of answers: how modprobe decides that two answers are the same.

Below the datasets and the analyses (it imports neither), so that data, runners and
analyses compare answers alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Punctuation stripped from both ends of an answer (``"Red."`` answers ``red``).
ANSWER_PUNCTUATION = ".,!?;:\"'"


def normalize_answer(value: Any) -> Any:
    """Canonical form of an answer or token for equality tests.

    The one normaliser of answers in modprobe: the study runner writes its answers with
    it, and following, oscillation and the analyses compare with it. Strings are
    stripped of whitespace and of `ANSWER_PUNCTUATION` at both ends and case-folded
    (``" Red."`` == ``"red"``: tokenizers emit a leading space, models capitalise and
    end sentences); a string that is punctuation only keeps it (``"."`` stays ``"."``,
    so it is not mistaken for an empty answer). Integers (token ids) are kept; missing
    values (``None``, NaN, ``pd.NA``) become ``None`` so they never equal a real answer.
    """
    if value is None:
        return None
    if isinstance(value, str):
        folded = value.strip().casefold()
        return folded.strip(ANSWER_PUNCTUATION).strip() or folded
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    if isinstance(value, np.generic):
        return value.item()
    return value


def normalize_answers(values: Sequence[Any] | np.ndarray) -> list[Any]:
    """`normalize_answer` applied to every element of a 1-D sequence."""
    if hasattr(values, "tolist") and not isinstance(values, list):
        values = values.tolist()
    return [normalize_answer(v) for v in values]
