"""Which modality each conflict answer follows, and the macro text-following rate.

docs/science.md section 1, "Conflict" and "Macro ratios". An item is a conflict when the
text-only answer Y_t differs from the vision-only answer Y_v. Its multimodal answer Y_m
is text-following if it equals Y_t, vision-following if it equals Y_v, other otherwise.
Answers are compared after `normalize_answer` (strings stripped and case-folded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modprobe.analysis._arrays import normalize_answers, to_numpy
from modprobe.stats import DEFAULT_RESAMPLES, mean_interval, wilson_interval

TEXT = "text"
VISION = "vision"
OTHER = "other"
#: Label of items with Y_t == Y_v: not conflicts, flagged and left out of every rate.
NO_CONFLICT = "no_conflict"
LABELS: tuple[str, ...] = (TEXT, VISION, OTHER, NO_CONFLICT)


def classify_following(
    y_text: Sequence[Any] | np.ndarray,
    y_vision: Sequence[Any] | np.ndarray,
    y_multi: Sequence[Any] | np.ndarray,
) -> np.ndarray:
    """Label each item text-, vision-following, other, or not a conflict.

    docs/science.md section 1, "Conflict": ``no_conflict`` if ``Y_t == Y_v``; else ``text``
    if ``Y_m == Y_t``, ``vision`` if ``Y_m == Y_v``, ``other`` otherwise. A missing
    Y_m (None/NaN: the model gave no answer) is ``other``; a missing Y_t or Y_v makes
    the item undecidable, and it is labelled ``no_conflict`` so it is never counted.

    Args:
        y_text: ``items`` text-only answers (strings or token ids).
        y_vision: ``items`` vision-only answers.
        y_multi: ``items`` answers with both modalities.

    Returns:
        ``items`` array of labels from `LABELS` (dtype object).
    """
    yt, yv, ym = (normalize_answers(v) for v in (y_text, y_vision, y_multi))
    if not len(yt) == len(yv) == len(ym):
        raise ValueError(f"answer columns differ in length: {len(yt)}, {len(yv)}, {len(ym)}")
    labels = np.empty(len(yt), dtype=object)
    for i, (t, v, m) in enumerate(zip(yt, yv, ym)):
        if t is None or v is None or t == v:
            labels[i] = NO_CONFLICT
        elif m is not None and m == t:
            labels[i] = TEXT
        elif m is not None and m == v:
            labels[i] = VISION
        else:
            labels[i] = OTHER
    return labels


@dataclass(frozen=True)
class FollowingRates:
    """Macro text- and vision-following rates (docs/science.md section 1, "Macro ratios").

    Attributes:
        n_text: Text-following conflict items.
        n_vision: Vision-following conflict items.
        n_other: Conflict items that follow neither (excluded from the ratios).
        n_no_conflict: Items with Y_t == Y_v (flagged, excluded).
        n_filtered: Conflict items dropped by the correctness filter.
        tfr: ``n_text / (n_text + n_vision)`` (NaN when the denominator is 0).
        tfr_ci: Interval of TFR: Wilson, or a cluster bootstrap (``n_clusters``).
        vfr: ``1 - tfr``.
        vfr_ci: Interval of VFR.
        confidence: Interval level.
        filter_correct: Whether only items with both unimodal answers correct were kept.
        n_clusters: Clusters the interval resampled (None: the Wilson interval, which
            treats items as independent).
    """

    n_text: int
    n_vision: int
    n_other: int
    n_no_conflict: int
    n_filtered: int
    tfr: float
    tfr_ci: tuple[float, float]
    vfr: float
    vfr_ci: tuple[float, float]
    confidence: float
    filter_correct: bool
    n_clusters: int | None = None

    @property
    def n_decided(self) -> int:
        """Conflict items that follow one modality (the ratios' denominator)."""
        return self.n_text + self.n_vision


def correctness_mask(
    n_items: int,
    correct_text: Sequence[Any] | np.ndarray | None,
    correct_vision: Sequence[Any] | np.ndarray | None,
) -> np.ndarray:
    """Which items both unimodal runs answer correctly (the paper's macro filter).

    Args:
        n_items: Items in the table (each column must have this many values).
        correct_text: ``items`` bools: the text-only answer is correct.
        correct_vision: ``items`` bools: the vision-only answer is correct.

    Returns:
        ``items`` bools, True where both answers are correct.

    Raises:
        ValueError: When either correctness column is missing.
    """
    if correct_text is None or correct_vision is None:
        raise ValueError(
            "filter_correct needs both correct_text and correct_vision "
            "(the paper keeps items that both unimodal runs answer correctly)"
        )
    ct = to_numpy(correct_text, dtype=bool).reshape(-1)
    cv = to_numpy(correct_vision, dtype=bool).reshape(-1)
    if ct.size != n_items or cv.size != n_items:
        raise ValueError("correctness columns must have one value per item")
    return ct & cv


def following_rates(
    labels: Sequence[str] | np.ndarray,
    correct_text: Sequence[Any] | np.ndarray | None = None,
    correct_vision: Sequence[Any] | np.ndarray | None = None,
    filter_correct: bool = False,
    confidence: float = 0.95,
    clusters: Sequence[Any] | np.ndarray | None = None,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> FollowingRates:
    """Macro TFR and VFR with Wilson (or cluster-bootstrap) intervals.

    ``TFR = #text / (#text + #vision)``, ``VFR = 1 - TFR`` over conflict items
    (docs/science.md section 1, "Macro ratios"); 'other' and non-conflict items are counted
    but excluded. With ``filter_correct`` only items whose text-only and vision-only
    answers are both correct are kept, as in the paper's macro analysis. The Wilson
    interval treats items as independent; given ``clusters`` (items made together,
    whose outcomes correlate) it is the Korn-Graubard interval of
    `modprobe.stats.mean_interval` (a rate).

    Args:
        labels: ``items`` labels from `classify_following`.
        correct_text: ``items`` bools, Y_t correct (needed for the filter).
        correct_vision: ``items`` bools, Y_v correct (needed for the filter).
        filter_correct: Apply the paper's filter.
        confidence: Interval level.
        clusters: ``items`` cluster labels for a cluster-bootstrap interval.
        n_bootstrap: Replicates of that bootstrap.
        seed: Its seed.

    Returns:
        `FollowingRates`.
    """
    lab = np.asarray(labels, dtype=object).reshape(-1)
    conflict = lab != NO_CONFLICT
    keep = conflict.copy()
    n_filtered = 0
    if filter_correct:
        both = correctness_mask(lab.size, correct_text, correct_vision)
        n_filtered = int(np.sum(conflict & ~both))
        keep &= both
    n_text = int(np.sum(keep & (lab == TEXT)))
    n_vision = int(np.sum(keep & (lab == VISION)))
    n_other = int(np.sum(keep & (lab == OTHER)))
    decided = n_text + n_vision
    tfr = n_text / decided if decided else float("nan")
    tfr_ci = wilson_interval(n_text, decided, confidence)
    n_clusters = None
    in_ratio = keep & np.isin(lab, [TEXT, VISION])
    if clusters is not None and decided:
        labels = np.asarray(clusters, dtype=object).reshape(-1)
        if labels.size != lab.size:
            raise ValueError(f"clusters has {labels.size} labels for {lab.size} items")
        interval = mean_interval((lab[in_ratio] == TEXT).astype(float), labels[in_ratio],
                                 kind="rate", confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)
        # One cluster cannot be resampled: the Wilson interval stays (n_clusters None).
        if interval.n_clusters is not None and interval.identified:
            n_clusters = interval.n_clusters
            tfr_ci = interval.ci
    return FollowingRates(
        n_text=n_text,
        n_vision=n_vision,
        n_other=n_other,
        n_no_conflict=int(np.sum(~conflict)),
        n_filtered=n_filtered,
        tfr=tfr,
        tfr_ci=tfr_ci,
        vfr=1 - tfr,
        vfr_ci=(1 - tfr_ci[1], 1 - tfr_ci[0]),
        confidence=confidence,
        filter_correct=filter_correct,
        n_clusters=n_clusters,
    )
