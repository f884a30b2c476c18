"""Monotone fits and a cluster-honest test of a monotone trend.

Two pieces of the law that assume no curve shape (docs/science.md, "The law",
"Monotonicity test", "Balance point"):

* `fit_isotonic`: least-squares monotone (non-increasing by default) regression of a 0/1
  outcome on x, and `IsotonicFit.crossing`, where the fitted step function reaches a
  level, jumps included (0.5: the non-parametric balance point); `isotonic_crossings`
  for bootstrap replicates;
* `trend_test`: does P(y | x) rise or fall with x? The score of the logistic slope at
  ``b = 0`` is a sum over clusters (items that share a cluster count as one unit of
  evidence); its p-value comes from flipping the signs of the cluster sums (a wild
  cluster score bootstrap with Rademacher weights: exact enumeration up to 14
  clusters), which keeps its level with few clusters where Student's t is
  conservative. Its false-positive rate on clustered data with no effect is at its
  nominal level (tests/test_stats_monotone.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

from modprobe.stats._arrays import to_numpy
from modprobe.stats.resample import cluster_codes
from modprobe.stats.signflip import RANDOM_FLIPS, sign_flip_pvalues


@dataclass(frozen=True)
class IsotonicFit:
    """Monotone least-squares fit of P(y) on x.

    Attributes:
        x: ``points`` sorted unique x values.
        y: ``points`` fitted P(y), monotone in x.
        increasing: Direction of the fit.
        weights: ``points`` total weight (item count) at each x, for `centred`.
    """

    x: np.ndarray
    y: np.ndarray
    increasing: bool = False
    weights: np.ndarray | None = None

    def predict(self, x: Any) -> np.ndarray:
        """The fitted curve at ``x``.

        Args:
            x: Axis values (any shape).

        Returns:
            Fitted values of ``x``'s shape: linear between the fitted points, constant
            beyond the outermost ones.
        """
        return np.interp(to_numpy(x), self.x, self.y)

    def centred(self) -> tuple[np.ndarray, np.ndarray]:
        """Centred isotonic regression (Oron and Flournoy 2017).

        One point per block of equal fitted values, at the block's weighted mean x.
        Interpolating between block centres is a common monotone estimate of where a
        smooth curve reaches a target (e.g. a median effective dose), but it smooths a
        jump away, so `crossing` does not use it (docs/science.md).

        Returns:
            ``(x, y)`` of the block centres, strictly monotone.
        """
        if self.weights is None:
            return self.x, self.y
        edges = np.flatnonzero(np.diff(self.y) != 0) + 1
        starts = np.r_[0, edges]
        w = np.add.reduceat(self.weights, starts)
        cx = np.add.reduceat(self.weights * self.x, starts) / w
        return cx, self.y[starts]

    def crossing(self, level: float = 0.5) -> float:
        """Where the isotonic fit reaches ``level``: the monotone balance point.

        The generalised inverse of the fitted step function, jumps included: a block of
        fitted values within `LEVEL_TOLERANCE` of ``level`` crosses at the block's
        centre (its weighted mean x; no float equality, so a block that rounding left
        at 0.49999999999999994 is a block at 0.5); otherwise the crossing lies on the
        segment between the last point above ``level`` and the first point below it,
        linearly between them (the curve `predict` draws). This converges to the
        truth for a step law as well as a smooth one, because the fit's jumps converge
        to the law's (the centred fit's crossing, `centred`, does not: it
        interpolates across a jump between block centres). Outside the range: +inf
        when the curve never reaches ``level`` on the side of larger x (a
        non-increasing curve that stays above it), -inf on the other side.

        Args:
            level: The level crossed (0.5 for the balance point).

        Returns:
            The crossing x, or +-inf when the fit does not reach ``level`` in range.
        """
        where, at = self._locate(level)
        if where == "block":
            w = np.ones_like(self.x) if self.weights is None else self.weights
            return float(np.sum(w[at] * self.x[at]) / np.sum(w[at]))
        if where != "jump":
            return math.inf if where == "above" else -math.inf
        j = int(at)
        y = self.y if not self.increasing else -self.y
        target = level if not self.increasing else -level
        x0, x1, y0, y1 = self.x[j - 1], self.x[j], y[j - 1], y[j]
        return float(x0 + (y0 - target) / (y0 - y1) * (x1 - x0))

    def crossing_bracket(self, level: float = 0.5) -> tuple[float, float]:
        """Every x at which the fit is consistent with reaching ``level``.

        Between two observed x values a step law's crossing can lie anywhere, so the
        monotone balance point's interval covers the replicates' brackets, not only
        their interpolated points (`crossing`).

        Args:
            level: The level crossed.

        Returns:
            The span of a block at ``level``, or the gap ``(x_{j-1}, x_j)`` of the jump
            across it; ``(inf, inf)`` or ``(-inf, -inf)`` when the fit stays on one side.
        """
        where, at = self._locate(level)
        if where == "block":
            return float(self.x[at].min()), float(self.x[at].max())
        if where == "jump":
            j = int(at)
            return float(self.x[j - 1]), float(self.x[j])
        edge = math.inf if where == "above" else -math.inf
        return edge, edge

    def _locate(self, level: float) -> tuple[str, Any]:
        """Where a non-increasing view of the fit meets ``level``.

        Returns ``("block", mask)``, ``("jump", j)`` (j: the first point below),
        ``("above", None)`` or ``("below", None)``.
        """
        y = self.y if not self.increasing else -self.y
        target = level if not self.increasing else -level
        at = np.abs(y - target) <= LEVEL_TOLERANCE
        if at.any():
            return "block", at
        below = np.flatnonzero(y < target)
        if below.size == 0:
            return "above", None
        if below[0] == 0:
            return "below", None
        return "jump", int(below[0])


#: Fitted values this close to the level are at the level (PAVA's pooled means carry
#: rounding error of a few ulps; a rate of n items differs from 0.5 by at least 1/2n).
LEVEL_TOLERANCE = 1e-9


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
    return IsotonicFit(x=ux, y=np.asarray(fitted), increasing=increasing, weights=w_sum)


def isotonic_crossings(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    level: float = 0.5,
    grid: np.ndarray | None = None,
    increasing: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Crossings, brackets and optionally curves on ``grid`` of bootstrap isotonic refits.

    Args:
        x: ``items`` axis values.
        y: ``items`` outcomes.
        weights: ``replicates items`` bootstrap multiplicities.
        level: The level crossed.
        grid: Points at which to also evaluate every refit, for a band.
        increasing: Direction of the fits.

    Returns:
        ``replicates`` crossings (+-inf: no crossing in range), ``replicates points``
        curves of the fit (`IsotonicFit.predict`; None without ``grid``) and
        ``replicates 2`` brackets (`IsotonicFit.crossing_bracket`).
    """
    n_rep = weights.shape[0]
    cross = np.empty(n_rep)
    brackets = np.empty((n_rep, 2))
    curves = None if grid is None else np.empty((n_rep, grid.size))
    for r in range(n_rep):
        fit = fit_isotonic(x, y, weights=weights[r], increasing=increasing)
        cross[r] = fit.crossing(level)
        brackets[r] = fit.crossing_bracket(level)
        if curves is not None:
            curves[r] = fit.predict(grid)
    return cross, curves, brackets


@dataclass(frozen=True)
class TrendTest:
    """Score test of ``b = 0`` in ``P(y | x) = sigmoid(a + b x)``, cluster-robust.

    Attributes:
        score: ``U = sum_i (x_i - mean x)(y_i - mean y)``: negative when y falls with x.
        statistic: ``t = U / sqrt(V)``, ``V = G/(G-1) sum_g U_g^2`` over cluster sums.
        df: ``G - 1`` (informative; the p-value comes from sign flips).
        p_value: Two-sided sign-flip p-value (NaN when not testable).
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
        """``score test t=-5.21, p=0.00049 by all sign flips over 12 clusters``."""
        if not math.isfinite(self.p_value):
            return "score test not available (no variation in x or y)"
        unit = (f"{self.n_clusters} clusters" if self.clustered
                else f"{self.n} independent items")
        flips = ("all sign flips" if self.n_clusters <= EXACT_FLIPS_UP_TO
                 else f"{RANDOM_FLIPS} random sign flips")
        floor = (2.0 / 2**self.n_clusters if self.n_clusters <= EXACT_FLIPS_UP_TO
                 else 1.0 / (RANDOM_FLIPS + 1))
        # the smallest p the flips can give is said as such (never rounded below it)
        least = ": the smallest p they can give" if self.p_value <= floor * (1 + 1e-9) else ""
        return (f"score test t={self.statistic:.2f}, p={self.p_value:.2g} by {flips} over "
                f"{unit}{least}")


def trend_test(x: Any, y: Any, clusters: Any | None = None, alpha: float = 0.05,
               seed: int = 0) -> TrendTest:
    """Is P(y) monotonically related to x? A cluster-robust score test.

    Under ``H0: b = 0`` the logistic score for the slope, after fitting the intercept,
    is ``U = sum_g U_g`` with ``U_g = sum_{i in g} (x_i - xbar)(y_i - ybar)`` over the
    clusters ``g`` (every item its own cluster without labels). Under H0 the cluster
    sums are independent with mean 0, so flipping their signs at random leaves the
    distribution of ``U`` unchanged: the two-sided p-value is the share of sign patterns
    ``w`` with ``|sum_g w_g U_g| >= |U|`` (all ``2^G`` patterns up to 14 clusters, 4,999
    random ones beyond). This stays right when items of one cluster are correlated
    (shared logit shifts, x values close together) and with few clusters. The test
    assumes nothing about the curve's shape: any monotone trend moves ``U`` away from
    0. ``t = U / sqrt(G/(G-1) sum_g U_g^2)`` is reported as the effect's size.

    Args:
        x: ``items`` finite axis values.
        y: ``items`` 0/1 outcomes.
        clusters: ``items`` cluster labels, or None.
        alpha: Level at which `TrendTest.direction` establishes a direction.
        seed: Seed of the random sign patterns.

    Returns:
        `TrendTest`.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(y, dtype=np.float64).reshape(-1)
    codes = np.arange(xv.size) if clusters is None else cluster_codes(clusters, xv.size)
    t, df, p, u = trend_scores(xv[None], yv[None], codes, seed)
    return TrendTest(score=float(u[0]), statistic=float(t[0]), df=int(df), p_value=float(p[0]),
                     n=int(xv.size), n_clusters=int(codes.max()) + 1 if codes.size else 0,
                     clustered=clusters is not None, alpha=alpha)


#: Up to this many clusters the trend test enumerates every sign pattern (2^14 = 16,384;
#: it runs over many bootstrap datasets at once, so its limit is lower than
#: `modprobe.stats.signflip.EXACT_SIGN_FLIPS_UP_TO`).
EXACT_FLIPS_UP_TO = 14


def trend_scores(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Vectorised `trend_test` over datasets that share one cluster layout.

    Args:
        x: ``datasets items`` axis values.
        y: ``datasets items`` outcomes.
        codes: ``items`` cluster codes 0..G-1.
        seed: Seed of the random sign patterns (used beyond `EXACT_FLIPS_UP_TO` units).

    Returns:
        ``(t, df, p, U)``: ``datasets`` t statistics, ``G - 1``, two-sided sign-flip
        p-values (NaN where x or y does not vary) and scores.
    """
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    contrib = xc * yc
    n_clusters = int(codes.max()) + 1
    onehot = np.zeros((codes.size, n_clusters))
    onehot[np.arange(codes.size), codes] = 1.0
    per_cluster = contrib @ onehot  # datasets clusters
    u = per_cluster.sum(axis=1)
    v = n_clusters / max(n_clusters - 1, 1) * np.sum(per_cluster**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(v > 0, u / np.sqrt(v), np.nan)
    p = sign_flip_pvalues(per_cluster, EXACT_FLIPS_UP_TO, RANDOM_FLIPS, seed)
    return t, max(n_clusters - 1, 1), p, u
