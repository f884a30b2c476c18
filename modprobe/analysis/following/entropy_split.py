"""The robustness split: the law in the low- and high-total-entropy halves (docs/science.md).

`split_by_entropy` fits `modprobe.analysis.following.law.fit_law` on each half of the items,
split at the median of ``H_t + H_v``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modprobe.analysis._arrays import to_numpy
from modprobe.analysis.following.law import Law, fit_law


@dataclass(frozen=True)
class EntropySplit:
    """The law in the low- and high-total-entropy halves (docs/science.md).

    Attributes:
        median_total: Median of ``H_t + H_v`` over the items (the split point).
        low: Law for items with ``H_t + H_v <= median``.
        high: Law for items above the median.
    """

    median_total: float
    low: Law
    high: Law


def split_by_entropy(
    h_text: Any,
    h_vision: Any,
    x: Any,
    followed_text: Any,
    clusters: Any | None = None,
    **law_kwargs: Any,
) -> EntropySplit:
    """Fit the law separately below and above the median total entropy.

    docs/science.md, "Robustness split": split at ``median(H_t + H_v)`` (raw
    entropies, no floor); the law should hold in both halves, and the balance point
    should move toward 0 in the high-entropy half. Items whose total equals the median
    go to the low half (with saturated data many totals tie, so halves can be unequal).

    Args:
        h_text: ``items`` H_t.
        h_vision: ``items`` H_v.
        x: ``items`` axis values.
        followed_text: ``items`` bools.
        clusters: ``items`` cluster labels for a cluster bootstrap (see `fit_law`).
        **law_kwargs: Passed to `fit_law`.

    Returns:
        `EntropySplit`.
    """
    total = to_numpy(h_text).reshape(-1) + to_numpy(h_vision).reshape(-1)
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).reshape(-1)
    median = float(np.median(total))
    low = total <= median
    labels = None if clusters is None else np.asarray(clusters, dtype=object).reshape(-1)
    return EntropySplit(
        median_total=median,
        low=fit_law(xv[low], yv[low], clusters=None if labels is None else labels[low],
                    **law_kwargs),
        high=fit_law(xv[~low], yv[~low], clusters=None if labels is None else labels[~low],
                     **law_kwargs),
    )
