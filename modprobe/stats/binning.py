"""Bins of an axis and the rate of a 0/1 outcome per bin (for display).

docs/science.md, "The law": the paper plots the text-following rate per bin of the
uncertainty axis. Bins are display only: no test is run on them (a test over bins
treats correlated items as independent; see `modprobe.stats.monotone.trend_test`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from modprobe.stats._arrays import to_numpy
from modprobe.stats.intervals import DEFAULT_RESAMPLES, mean_interval, wilson_intervals

BinStrategy = Literal["quantile", "uniform"]


def bin_edges(x: np.ndarray, bins: int | Sequence[float] = 10,
              strategy: BinStrategy = "quantile") -> np.ndarray:
    """Increasing bin edges over ``x``.

    Quantile bins (the default) hold equal numbers of items, which matters when
    saturation piles items up at dH_rel = +-2; tied quantile edges are merged, so fewer
    bins may come back, and when ties leave fewer than half the requested bins (a point
    mass, e.g. floored saturated items all at 0) equal-width bins are used instead.

    Args:
        x: ``items`` finite values.
        bins: Number of bins, or the edges themselves (returned as floats).
        strategy: ``"quantile"`` or ``"uniform"`` (equal width); used when ``bins`` is
            an int.

    Returns:
        At least two increasing edges (``[min, max]`` when every value is the same).

    Raises:
        ValueError: On an unknown ``strategy``.
    """
    if not isinstance(bins, (int, np.integer)):
        edges = np.asarray(bins, dtype=np.float64)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(x, np.linspace(0, 1, int(bins) + 1)))
        if edges.size - 1 < int(bins) / 2:
            edges = np.linspace(x.min(), x.max(), int(bins) + 1)
    elif strategy == "uniform":
        edges = np.linspace(x.min(), x.max(), int(bins) + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    if edges.size < 2:
        edges = np.array([x.min(), x.max()])
    return edges


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of every value; the first and last bins are open-ended.

    Args:
        x: ``items`` values.
        edges: Increasing bin edges (`bin_edges`).

    Returns:
        ``items`` bin indices in ``[0, len(edges) - 2]``.
    """
    return np.searchsorted(edges[1:-1], x, side="right")


def binned_rate(
    x: Any,
    y: Any,
    bins: int | Sequence[float] = 10,
    strategy: BinStrategy = "quantile",
    confidence: float = 0.95,
    clusters: Any | None = None,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Rate of ``y`` per bin of ``x`` with intervals.

    ``rate_k = #(y = 1) in bin k / #items in bin k``. Intervals are Wilson intervals, or,
    given ``clusters``, Korn-Graubard cluster intervals (`modprobe.stats.mean_interval`
    with ``kind="rate"``).
    Empty bins are dropped.

    Args:
        x: ``items`` finite axis values.
        y: ``items`` bools.
        bins: Number of bins, or explicit increasing edges.
        strategy: ``"quantile"`` or ``"uniform"`` (equal width), used when ``bins`` is
            an int.
        confidence: Interval level.
        clusters: ``items`` cluster labels, or None.
        n_bootstrap: Accepted for callers that pass it on; rate intervals draw no
            bootstrap.
        seed: Accepted likewise.

    Returns:
        One row per non-empty bin: ``x_low, x_high, x_mean, n, n_text, rate, ci_low,
        ci_high``.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(y, dtype=bool).reshape(-1)
    edges = bin_edges(xv, bins, strategy)
    index = bin_index(xv, edges)
    n_bins = edges.size - 1
    n = np.bincount(index, minlength=n_bins)
    k = np.bincount(index, weights=yv.astype(np.float64), minlength=n_bins)
    x_sum = np.bincount(index, weights=xv, minlength=n_bins)
    if clusters is None:
        low, high = wilson_intervals(k, n, confidence)
    else:
        labels = np.asarray(clusters, dtype=object).reshape(-1)
        low, high = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
        for b in np.flatnonzero(n):
            inside = index == b
            ci = mean_interval(yv[inside], labels[inside], kind="rate",
                               confidence=confidence, n_bootstrap=n_bootstrap, seed=seed + b)
            low[b], high[b] = ci.ci
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame({"x_low": edges[:-1], "x_high": edges[1:], "x_mean": x_sum / n,
                              "n": n.astype(int), "n_text": k.astype(int), "rate": k / n,
                              "ci_low": low, "ci_high": high})
    return frame[frame["n"] > 0].reset_index(drop=True)
