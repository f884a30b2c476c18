"""Balance points: where a fitted P(text-following) crosses 0.5, and which to trust.

docs/science.md section 1, "Balance point". `modprobe.analysis.following.law` computes the
logistic and the monotone crossing and their bootstrap replicates; this module turns
them into `BalancePoint` results (interval, Monte Carlo error, flags, or the side the
curve stays on) and says in one line which estimate to trust (`recommend`).
`balance_point` gives the logistic balance point alone, straight from the items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modprobe.analysis._arrays import to_numpy
from modprobe.stats.gof import GoodnessOfFit
from modprobe.stats.intervals import (
    DEFAULT_RESAMPLES,
    bootstrap_interval,
    percentile_interval,
    quantile_mc_error,
)
from modprobe.stats.logistic import LogisticFit, bootstrap_logistic, crossing, fit_logistic
from modprobe.stats.resample import cluster_codes, resample_weights


@dataclass(frozen=True)
class BalancePoint:
    """Where a fitted P(text-following) crosses 0.5 (docs/science.md, "Balance point").

    Attributes:
        value: The crossing when it lies inside the observed range, else NaN.
        ci_low: Lower percentile-bootstrap bound (NaN when not crossing; -inf when
            replicates run off the range: an open interval, flagged).
        ci_high: Upper bound.
        crosses: Whether the fitted curve crosses 0.5 inside the observed range.
        direction: When it does not cross: ``"text"`` if the curve stays above 0.5,
            ``"vision"`` if below; None when it crosses.
        reason: Human-readable explanation when it does not cross.
        extrapolated: The logistic's ``-a / b`` wherever it lies (+-inf: flat fit; the
            monotone fit's crossing, +-inf outside the range).
        x_range: ``(min, max)`` of the observed axis values.
        share_crossing: Share of bootstrap replicates whose crossing is in range.
        confidence: Interval level.
        n_bootstrap: Bootstrap replicates.
        method: ``"logistic"`` or ``"monotone"``.
        mc_error: Monte Carlo standard error of the interval bounds.
        flags: Warnings about the interval (open, outside the observed range).
        n_clusters: Clusters resampled (None: items).
    """

    value: float
    ci_low: float
    ci_high: float
    crosses: bool
    direction: str | None
    reason: str | None
    extrapolated: float
    x_range: tuple[float, float]
    share_crossing: float
    confidence: float
    n_bootstrap: int
    method: str = "logistic"
    mc_error: float = float("nan")
    flags: tuple[str, ...] = ()
    n_clusters: int | None = None

    def summary(self, name: str = "balance_point") -> str:
        """One line: ``<name>=<x> ci=[<lo>, <hi>]`` or ``<name>=none (<reason>)``.

        Args:
            name: The label before ``=`` (e.g. ``x*`` in the law's summary).

        Returns:
            The line, with the interval's flags in brackets after it when there are any.
        """
        if not self.crosses:
            return f"{name}=none ({self.reason})"
        text = f"{name}={self.value:.3f} ci=[{self.ci_low:.3f}, {self.ci_high:.3f}]"
        return text + (f" [{'; '.join(self.flags)}]" if self.flags else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``value``, ``ci``, ``crosses``, ...; non-finite numbers -> None)."""
        def num(v: float) -> float | None:
            return float(v) if v is not None and math.isfinite(v) else None
        return {"value": num(self.value), "ci": [num(self.ci_low), num(self.ci_high)],
                "crosses": self.crosses, "summary": self.summary(), "method": self.method,
                "direction": self.direction, "mc_error": num(self.mc_error),
                "flags": list(self.flags), "share_crossing": num(self.share_crossing),
                "n_bootstrap": self.n_bootstrap, "n_clusters": self.n_clusters,
                "confidence": self.confidence}


#: x values closer than this are one value (the axes are dH_rel in [-2, 2], or nats).
X_RESOLUTION = 1e-6


def balance_from_replicates(x0: float, replicates: np.ndarray, x_range: tuple[float, float],
                            confidence: float, method: str, stays_above: bool, n: int,
                            n_clusters: int | None, extrapolated: float) -> BalancePoint:
    """A `BalancePoint` from a full-sample crossing and its bootstrap crossings.

    A crossing inside ``x_range`` gets a bootstrap interval
    (`modprobe.stats.intervals.bootstrap_interval`); one outside it gets no number and a
    reason that says on which side of 0.5 the curve stays.

    Args:
        x0: The full-sample curve's crossing of 0.5 (+-inf: it does not cross).
        replicates: ``replicates`` bootstrap crossings (+-inf where a replicate's curve
            does not cross).
        x_range: ``(min, max)`` of the observed axis values.
        confidence: Interval level.
        method: ``"logistic"`` or ``"monotone"`` (worded into the reason).
        stays_above: Whether the full-sample curve stays above 0.5 when it does not cross.
        n: Items behind the fit.
        n_clusters: Clusters resampled (None: items). The interval's level expands
            when the resampled units (clusters, else items) are few.
        extrapolated: Where the curve would cross outside the range (+-inf: flat),
            kept on the result and worded into a logistic reason.

    Returns:
        `BalancePoint`; not identified (NaN, no direction) when every item has one x.
    """
    lo, hi = x_range
    share = float(np.mean((replicates >= lo) & (replicates <= hi)))
    common = {"extrapolated": extrapolated, "x_range": x_range, "share_crossing": share,
              "confidence": confidence, "n_bootstrap": replicates.size, "method": method,
              "n_clusters": n_clusters}
    if hi - lo <= X_RESOLUTION:  # one distinct x: no curve, so no crossing and no side
        nan = float("nan")
        return BalancePoint(nan, nan, nan, False, None,
                            f"not identified: every item has the same x ({lo:.3f}), so the "
                            "data cannot say where P(text) crosses 0.5", **common)
    if math.isfinite(x0) and lo <= x0 <= hi:
        ci = bootstrap_interval(replicates, x0, confidence=confidence, n=n,
                                n_clusters=n_clusters, bounds=x_range)
        return BalancePoint(x0, ci.low, ci.high, True, None, None, mc_error=ci.mc_error,
                            flags=ci.flags, **common)
    direction = "text" if stays_above else "vision"
    curve = "fitted P(text)" if method == "logistic" else "the monotone fit of P(text)"
    if method == "logistic":
        where = ("the fit is flat" if not math.isfinite(extrapolated)
                 else f"it would cross at {extrapolated:.3f} by extrapolation")
    else:
        where = "a monotone fit is not extrapolated"
    reason = (f"{curve} stays {'above' if stays_above else 'below'} 0.5 over the observed "
              f"range [{lo:.3f}, {hi:.3f}], so items follow the {direction} throughout; "
              f"{where}; {share:.0%} of bootstrap fits cross in range")
    nan = float("nan")
    return BalancePoint(nan, nan, nan, False, direction, reason, **common)


def recommend(law_gof: GoodnessOfFit, logistic: BalancePoint, monotone: BalancePoint,
              trend: Any) -> tuple[str, str]:
    """Which balance point to trust, and why, in one line (docs/science.md, "Balance point").

    Args:
        law_gof: The Hosmer-Lemeshow test of the logistic fit.
        logistic: The logistic balance point.
        monotone: The monotone (isotonic) balance point.
        trend: The law's `MonotonicityTest` (only its ``direction`` is read).

    Returns:
        ``("logistic" or "monotone", reason)``.
    """
    if trend.direction is None:
        return "logistic", ("no monotone trend is established, so neither balance point "
                            "locates a real crossing; read them as descriptive")
    if trend.direction == "increasing":
        return "logistic", ("the trend is increasing, and the monotone fit is non-increasing "
                            "(the wrong shape for these data); trust the logistic balance "
                            "point, which follows the trend either way")
    if law_gof.rejected:
        return "monotone", (f"trust the monotone balance point: the logistic curve does not "
                            f"fit ({law_gof.describe()}), so its crossing is a compromise "
                            "of the wrong shape")
    if logistic.crosses != monotone.crosses:
        which = "logistic" if logistic.crosses else "monotone"
        return "monotone", (f"only the {which} curve crosses 0.5 in the observed range; trust "
                            "the monotone fit, which extrapolates nothing")
    if not logistic.crosses:
        return "logistic", "neither curve crosses 0.5 in the observed range"

    # The monotone interval assumes only monotonicity: a logistic estimate outside it is
    # the logistic shape pulling the crossing. (The converse test would fire by chance:
    # the logistic interval is the narrower one when the logistic law is right.)
    if not monotone.ci_low <= logistic.value <= monotone.ci_high:
        return "monotone", (f"the balance points disagree (logistic {logistic.value:.3f} lies "
                            f"outside the monotone interval around {monotone.value:.3f}) "
                            "although the logistic fit is not rejected; trust the monotone "
                            "one, which assumes only a monotone law")
    return "logistic", ("the logistic balance point lies inside the monotone one's interval "
                        "and the logistic fit is not rejected; the logistic one (the "
                        "paper's display) stands")


def separated(xv: np.ndarray, yv: np.ndarray) -> bool:
    """Whether x separates the two outcomes, so the logistic fit has no finite estimate.

    Complete separation, or quasi-complete (the two outcomes' x ranges touch at one x):
    the likelihood keeps rising as the slope runs to infinity, and any finite slope an
    optimiser stops at is arbitrary (Albert and Anderson 1984).

    Args:
        xv: ``items`` axis values.
        yv: ``items`` outcomes in {0, 1} (1 = text-following).

    Returns:
        True when separated; False when only one outcome occurs.
    """
    if not 0 < yv.sum() < yv.size:
        return False
    text, vision = xv[yv > 0.5], xv[yv <= 0.5]
    return bool(text.max() <= vision.min() or vision.max() <= text.min())


def logistic_point(xv: np.ndarray, yv: np.ndarray, fit: LogisticFit, boot: np.ndarray,
                   confidence: float, n_clusters: int | None) -> BalancePoint:
    """The logistic `BalancePoint` ``x* = -a / b`` with its bootstrap interval.

    Args:
        xv: ``items`` axis values the law was fitted on.
        yv: ``items`` outcomes in {0, 1} (1 = text-following).
        fit: The full-sample logistic fit.
        boot: ``replicates 2`` bootstrap coefficients ``(a, b)``.
        confidence: Interval level.
        n_clusters: Clusters resampled (None: items).

    Returns:
        `BalancePoint`; not identified (NaN, no direction) when x separates the outcomes
        (`separated`).
    """
    x_range = (float(xv.min()), float(xv.max()))
    if separated(xv, yv) and np.ptp(xv) > X_RESOLUTION:
        nan = float("nan")
        return BalancePoint(
            nan, nan, nan, False, None,
            "not identified: x separates the text- and vision-following items completely, "
            "so the logistic fit has no maximum-likelihood estimate and no balance point "
            "(the monotone one does not need it)", nan, x_range, nan, confidence,
            int(boot.shape[0]), "logistic", n_clusters=n_clusters)
    coef = np.array([[fit.intercept, fit.slope]])
    x0 = float(crossing(coef)[0])
    above = bool(fit.predict((x_range[0] + x_range[1]) / 2) > 0.5)
    return balance_from_replicates(x0, crossing(boot), x_range, confidence, "logistic", above,
                                   xv.size, n_clusters, x0)


def widen_to_brackets(point: BalancePoint, brackets: np.ndarray,
                      level: float) -> BalancePoint:
    """The monotone interval widened to cover the replicates' crossing brackets.

    A step law's crossing can lie anywhere in the gap between two observed x values, so
    the interval runs from the low percentile of the brackets' left ends to the high
    percentile of their right ends (`IsotonicFit.crossing_bracket`).

    Args:
        point: The monotone balance point from the interpolated crossings.
        brackets: ``replicates 2`` brackets of the bootstrap isotonic refits.
        level: The (expanded) percentile level of the interval.

    Returns:
        ``point`` with the widened interval and the larger Monte Carlo error; a point
        that does not cross is returned as is.
    """
    if not point.crosses:
        return point
    low = percentile_interval(brackets[:, 0], level)[0]
    high = percentile_interval(brackets[:, 1], level)[1]
    tail = (1.0 - level) / 2
    mc = max(point.mc_error, quantile_mc_error(brackets[:, 0], tail),
             quantile_mc_error(brackets[:, 1], 1 - tail))
    return replace(point, ci_low=min(point.ci_low, low), ci_high=max(point.ci_high, high),
                   mc_error=mc)


def law_items(
    x: Any, followed_text: Any, clusters: Any | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The items a law is fitted on: finite-x items as float arrays, with cluster codes.

    Args:
        x: ``items`` axis values (NaN entries are dropped).
        followed_text: ``items`` bools (True = text-following, False = vision).
        clusters: ``items`` cluster labels, or None.

    Returns:
        ``(x, y, codes)``: the kept items' float x and 0/1 outcomes, and their cluster
        codes 0..G-1 (`modprobe.stats.resample.cluster_codes`; None without clusters).

    Raises:
        ValueError: When ``x`` and ``followed_text`` differ in length, fewer than 3 items
            have a finite x, or the kept items span fewer than 2 clusters.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).astype(np.float64).reshape(-1)
    if xv.size != yv.size:
        raise ValueError(f"x has {xv.size} items but followed_text has {yv.size}")
    keep = np.isfinite(xv)
    codes = None if clusters is None else cluster_codes(clusters, xv.size, keep)
    xv, yv = xv[keep], yv[keep]
    if xv.size < 3:
        raise ValueError(f"the law needs at least 3 decided items with a finite x, got {xv.size}")
    if codes is not None and codes.max() < 1:
        raise ValueError("a cluster bootstrap needs at least 2 clusters; all items share one")
    return xv, yv, codes


def balance_point(
    x: Any,
    followed_text: Any,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: Any | None = None,
) -> BalancePoint:
    """Logistic balance point ``x* = -a / b`` with a (cluster-)bootstrap interval.

    The x at which the fitted ``P(text | x) = sigmoid(a + b x)`` equals 0.5; when it
    does not cross 0.5 inside ``[min x, max x]``, no number is reported: ``crosses`` is
    False and ``direction``/``reason`` say on which side it stays.
    `modprobe.analysis.following.law.fit_law` also gives the monotone balance point and
    the goodness of fit.

    Args:
        x: ``items`` axis values of decided conflict items (NaN entries are dropped).
        followed_text: ``items`` bools (True = text-following, False = vision).
        n_bootstrap: Bootstrap replicates.
        confidence: Interval level.
        seed: Seed of the resampling.
        clusters: ``items`` cluster labels: resample whole clusters instead of items.

    Returns:
        `BalancePoint`.
    """
    xv, yv, codes = law_items(x, followed_text, clusters)
    fit = fit_logistic(xv, yv)
    weights = resample_weights(xv.size, n_bootstrap, np.random.default_rng(seed), codes)
    boot = bootstrap_logistic(xv, yv, weights, np.array([fit.intercept, fit.slope]))
    n_clusters = None if codes is None else int(codes.max()) + 1
    return logistic_point(xv, yv, fit, boot, confidence, n_clusters)
