"""Monotone fits and a cluster-honest test of a monotone trend.

Two pieces of the law that assume no curve shape (docs/science.md, "The law",
"Monotonicity test", "Balance point"):

* `fit_isotonic`: least-squares monotone (non-increasing by default) regression of a 0/1
  outcome on x, and `IsotonicFit.crossing`, where it crosses a level (0.5: the
  non-parametric balance point); `isotonic_crossings` for bootstrap replicates;
* `trend_test`: does P(y | x) rise or fall with x? A score test of the logistic slope
  at ``b = 0`` whose variance is estimated from cluster sums, so items that share a
  cluster count as one unit of evidence; referred to Student's t with G - 1 degrees of
  freedom (G clusters, or items without clusters). Its false-positive rate on clustered
  data with no effect is at its nominal level (tests/test_stats_monotone.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import isotonic_regression

from modprobe.stats._arrays import to_numpy
from modprobe.stats.resample import cluster_codes


@dataclass(frozen=True)
class IsotonicFit:
    """Monotone least-squares fit of P(y) on x.

    Attributes:
        x: ``points`` sorted unique x values.
        y: ``points`` fitted P(y), monotone in x.
        increasing: Direction of the fit.
    """

    x: np.ndarray
    y: np.ndarray
    increasing: bool = False

    def predict(self, x: Any) -> np.ndarray:
        """Fitted values at ``x``, linear between points and constant outside."""
        return np.interp(to_numpy(x), self.x, self.y)

    def crossing(self, level: float = 0.5) -> float:
        """Where the fitted curve (as `predict` draws it) crosses ``level``.

        Inside the range: the x where the piecewise-linear fit first reaches ``level``
        (the middle of a flat stretch exactly at ``level``). Outside: +inf when the
        curve never reaches ``level`` on the side of larger x (a non-increasing curve
        that stays above it), -inf on the other side.
        """
        y = self.y if not self.increasing else -self.y
        target = level if not self.increasing else -level
        below = np.flatnonzero(y <= target)
        if below.size == 0:
            return math.inf
        j = int(below[0])
        if j == 0:
            return -math.inf if y[0] < target else _flat_middle(self.x, y, target, 0)
        if y[j] == target:
            return _flat_middle(self.x, y, target, j)
        x0, x1, y0, y1 = self.x[j - 1], self.x[j], y[j - 1], y[j]
        return float(x0 + (y0 - target) / (y0 - y1) * (x1 - x0))


def _flat_middle(x: np.ndarray, y: np.ndarray, target: float, start: int) -> float:
    stop = start
    while stop + 1 < y.size and y[stop + 1] == target:
        stop += 1
    if start == 0 and stop == y.size - 1:
        return float((x[0] + x[-1]) / 2)
    return float((x[start] + x[stop]) / 2)


def fit_isotonic(
    x: Any, followed_text: Any, weights: Any | None = None, increasing: bool = False
) -> IsotonicFit:
    """Isotonic regression of a 0/1 outcome on x (non-increasing by default).

    Minimises ``sum_i w_i (y_i - f(x_i))^2`` over monotone ``f`` with
    ``scipy.optimize.isotonic_regression`` on the x-sorted data, tied x values pooled
    (their mean outcome, weighted by their count).

    Args:
        x: ``items`` finite axis values.
        followed_text: ``items`` bools.
        weights: Optional ``items`` non-negative weights (e.g. bootstrap counts; items
            of weight 0 are left out).
        increasing: Fit a non-decreasing curve instead.

    Returns:
        `IsotonicFit`.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).astype(np.float64).reshape(-1)
    wv = np.ones_like(xv) if weights is None else to_numpy(weights).reshape(-1)
    keep = wv > 0
    xv, yv, wv = xv[keep], yv[keep], wv[keep]
    ux, inverse = np.unique(xv, return_inverse=True)
    w_sum = np.bincount(inverse, weights=wv, minlength=ux.size)
    y_mean = np.bincount(inverse, weights=wv * yv, minlength=ux.size) / w_sum
    fitted = isotonic_regression(y_mean, weights=w_sum, increasing=increasing).x
    return IsotonicFit(x=ux, y=np.asarray(fitted), increasing=increasing)


def isotonic_crossings(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    level: float = 0.5,
    grid: np.ndarray | None = None,
    increasing: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crossings (and optionally curves on ``grid``) of bootstrap isotonic refits.

    Args:
        x: ``items`` axis values.
        y: ``items`` outcomes.
        weights: ``replicates items`` bootstrap multiplicities.
        level: The level crossed.
        grid: Points at which to also evaluate every refit (for a band), or None.
        increasing: Direction of the fits.

    Returns:
        ``replicates`` crossings (+-inf: no crossing in range) and ``replicates points``
        curves (None without ``grid``).
    """
    n_rep = weights.shape[0]
    cross = np.empty(n_rep)
    curves = None if grid is None else np.empty((n_rep, grid.size))
    for r in range(n_rep):
        fit = fit_isotonic(x, y, weights=weights[r], increasing=increasing)
        cross[r] = fit.crossing(level)
        if curves is not None:
            curves[r] = fit.predict(grid)
    return cross, curves


@dataclass(frozen=True)
class TrendTest:
    """Score test of ``b = 0`` in ``P(y | x) = sigmoid(a + b x)``, cluster-robust.

    Attributes:
        score: ``U = sum_i (x_i - mean x)(y_i - mean y)``: negative when y falls with x.
        statistic: ``t = U / sqrt(V)``, ``V = G/(G-1) sum_g U_g^2`` over cluster sums.
        df: Degrees of freedom of the reference t distribution, ``G - 1``.
        p_value: Two-sided p-value (NaN when not testable).
        n: Items.
        n_clusters: Independent units G (clusters, or items without clusters).
        clustered: Whether cluster labels were used.
        alpha: Level at which a direction is established.
    """

    score: float
    statistic: float
    df: int
    p_value: float
    n: int
    n_clusters: int
    clustered: bool
    alpha: float = 0.05

    @property
    def direction(self) -> str | None:
        """``"decreasing"`` or ``"increasing"`` when ``p < alpha``, else None."""
        if not self.p_value < self.alpha:
            return None
        return "decreasing" if self.score < 0 else "increasing"

    def describe(self) -> str:
        """``score test t=-5.21 on 11 df, p=2.9e-04 (cluster-robust, 12 clusters)``."""
        if not math.isfinite(self.p_value):
            return "score test not available (no variation in x or y)"
        unit = (f"cluster-robust, {self.n_clusters} clusters" if self.clustered
                else f"{self.n} independent items")
        return (f"score test t={self.statistic:.2f} on {self.df} df, p={self.p_value:.2g} "
                f"({unit})")


def trend_test(x: Any, y: Any, clusters: Any | None = None, alpha: float = 0.05) -> TrendTest:
    """Is P(y) monotonically related to x? A cluster-robust score test.

    Under ``H0: b = 0`` the logistic score for the slope, after fitting the intercept,
    is ``U = sum_i (x_i - xbar)(y_i - ybar)``. Its variance is estimated from the sums
    ``U_g`` of the clusters (``V = G/(G-1) sum_g U_g^2``), which stays right when items
    of one cluster are correlated (shared logit shifts, x values close together), and
    ``t = U / sqrt(V)`` is referred to Student's t with ``G - 1`` degrees of freedom
    (small-sample correction for few clusters). Without clusters every item is its own
    cluster. The test assumes nothing about the curve's shape under the alternative: any
    monotone trend moves ``U`` away from 0.

    Args:
        x: ``items`` finite axis values.
        y: ``items`` 0/1 outcomes.
        clusters: ``items`` cluster labels, or None.
        alpha: Level at which `TrendTest.direction` establishes a direction.

    Returns:
        `TrendTest`.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(y, dtype=np.float64).reshape(-1)
    codes = np.arange(xv.size) if clusters is None else cluster_codes(clusters, xv.size)
    t, df, p, u = trend_scores(xv[None], yv[None], codes)
    return TrendTest(score=float(u[0]), statistic=float(t[0]), df=int(df), p_value=float(p[0]),
                     n=int(xv.size), n_clusters=int(codes.max()) + 1 if codes.size else 0,
                     clustered=clusters is not None, alpha=alpha)


def trend_scores(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Vectorised `trend_test` over datasets that share one cluster layout.

    Args:
        x: ``datasets items`` axis values.
        y: ``datasets items`` outcomes.
        codes: ``items`` cluster codes 0..G-1.

    Returns:
        ``(t, df, p, U)``: ``datasets`` statistics, the degrees of freedom, two-sided
        p-values (NaN where x or y does not vary) and scores.
    """
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    contrib = xc * yc
    n_clusters = int(codes.max()) + 1
    onehot = np.zeros((codes.size, n_clusters))
    onehot[np.arange(codes.size), codes] = 1.0
    per_cluster = contrib @ onehot
    u = contrib.sum(axis=1)
    v = n_clusters / max(n_clusters - 1, 1) * np.sum(per_cluster**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(v > 0, u / np.sqrt(v), np.nan)
    df = max(n_clusters - 1, 1)
    p = 2 * stats.t.sf(np.abs(t), df)
    return t, df, p, u
