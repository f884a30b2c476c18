"""Small array helpers shared by the analysis modules (no torch import)."""

from __future__ import annotations

from modprobe.answers import (  # noqa: F401  (re-exported: the analyses' names)
    ANSWER_PUNCTUATION,
    normalize_answer,
    normalize_answers,
)
from modprobe.stats._arrays import to_numpy  # noqa: F401  (re-exported: one converter)

