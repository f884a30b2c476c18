"""Per-layer logit difference between the text and the vision answer (docs/science.md section 1).

``logit_difference`` reads it from logit-lens logits; ``logit_difference_matrix`` orders the
items by the uncertainty axis for the heat map of
`modprobe.analysis.following.layer_plots.plot_logit_difference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modprobe.analysis._arrays import to_numpy


@dataclass(frozen=True)
class LogitDifferenceMatrix:
    """Per-layer ``logit(Y_t) - logit(Y_v)``, items ordered by the axis (docs/science.md s. 1).

    Attributes:
        values: ``layers items`` differences, columns sorted by ascending x.
        x: ``items`` sorted axis values.
        order: ``items`` original column index of each sorted column.
    """

    values: np.ndarray
    x: np.ndarray
    order: np.ndarray


def logit_difference(lens_logits: Any, text_ids: Any, vision_ids: Any) -> np.ndarray:
    """``layers items`` matrix ``logit(Y_t) - logit(Y_v)`` from full lens logits.

    docs/science.md section 1, "Heatmap": ``D[l, i] = z_{i,l}[t_i] - z_{i,l}[v_i]`` where
    ``z_{i,l}`` is the logit-lens output of item ``i`` at layer ``l``.

    Args:
        lens_logits: ``items layers vocab`` lens logits (numpy or torch).
        text_ids: ``items`` token id of Y_t.
        vision_ids: ``items`` token id of Y_v.

    Returns:
        ``layers items`` float array.
    """
    z = to_numpy(lens_logits)
    t = to_numpy(text_ids, dtype=np.int64).reshape(-1)
    v = to_numpy(vision_ids, dtype=np.int64).reshape(-1)
    items = np.arange(z.shape[0])
    diff = z[items, :, t] - z[items, :, v]  # items layers
    return diff.T


def logit_difference_matrix(logit_diff: Any, x: Any) -> LogitDifferenceMatrix:
    """Order the ``layers items`` logit-difference matrix by the uncertainty axis.

    docs/science.md section 1, "Heatmap": rows (here: columns, one per item) ordered by
    dH_rel. Items with a NaN x (degenerate) are dropped.

    Args:
        logit_diff: ``layers items`` ``logit(Y_t) - logit(Y_v)``.
        x: ``items`` axis values.

    Returns:
        `LogitDifferenceMatrix`.
    """
    d = to_numpy(logit_diff)
    xv = to_numpy(x).reshape(-1)
    if d.ndim != 2 or d.shape[1] != xv.size:
        raise ValueError(f"logit_diff must be layers x items with {xv.size} items, got {d.shape}")
    finite = np.flatnonzero(np.isfinite(xv))
    order = finite[np.argsort(xv[finite], kind="stable")]
    return LogitDifferenceMatrix(values=d[:, order], x=xv[order], order=order)
