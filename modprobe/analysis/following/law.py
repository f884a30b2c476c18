"""The modality-following law: P(text-following) against the uncertainty axis.

docs/science.md, "The law", "Balance point", "Goodness of fit" and "Robustness split".
The law is estimated on decided conflict items (text- or vision-following; 'other'
items say nothing about which modality wins) as

* a binned text-following rate (display only; `modprobe.stats.binning`),
* a logistic model ``P(text | x) = sigmoid(a + b x)`` (`modprobe.stats.logistic`), the
  paper's display, checked by a Hosmer-Lemeshow test (`modprobe.stats.gof`),
* a monotone (isotonic) fit (`modprobe.stats.monotone`), which assumes no shape,

with two balance points, where each curve crosses 0.5, a cluster-robust test of the
trend's direction, and a one-line recommendation of which balance point to trust. All
intervals come from one bootstrap (`modprobe.stats.resample`): items resampled with
replacement, or, given ``clusters``, whole clusters of items whose outcomes correlate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit

from modprobe.analysis.following.balance import (
    X_RESOLUTION,
    BalancePoint,
    balance_from_replicates,
    balance_point,
    law_items,
    logistic_point,
    recommend,
    separated,
    widen_to_brackets,
)
from modprobe.stats.binning import BinStrategy, binned_rate
from modprobe.stats.gof import GoodnessOfFit, hosmer_lemeshow
from modprobe.stats.intervals import (
    DEFAULT_RESAMPLES,
    expanded_level,
    percentile_interval,
)
from modprobe.stats.logistic import (
    LogisticFit,
    bootstrap_logistic,
    fit_logistic,
    fit_logistic_batch,
)
from modprobe.stats.monotone import IsotonicFit, TrendTest, fit_isotonic, isotonic_crossings
from modprobe.stats.monotone import trend_test as _trend_test
from modprobe.stats.resample import resample_weights

Estimate = Literal["logistic", "monotone", "auto"]
ESTIMATES: tuple[str, ...] = ("logistic", "monotone", "auto")

__all__ = ["BalancePoint", "IsotonicFit", "Law", "LogisticFit", "MonotonicityTest",
           "balance_point", "binned_following_rate", "fit_isotonic", "fit_law", "fit_logistic",
           "fit_logistic_batch"]


def binned_following_rate(x: Any, followed_text: Any, bins: int | Sequence[float] = 10,
                          strategy: BinStrategy = "quantile", confidence: float = 0.95,
                          clusters: Any | None = None, n_bootstrap: int = DEFAULT_RESAMPLES,
                          seed: int = 0) -> pd.DataFrame:
    """Text-following rate per bin of the axis (`modprobe.stats.binning.binned_rate`).

    Args:
        x: ``items`` finite axis values.
        followed_text: ``items`` bools (True = text-following).
        bins: Number of bins, or explicit increasing edges.
        strategy: ``"quantile"`` (equal counts) or ``"uniform"`` (equal width) bins.
        confidence: Interval level.
        clusters: ``items`` cluster labels for cluster-bootstrap intervals (None: Wilson
            intervals).
        n_bootstrap: Replicates of the cluster bootstrap.
        seed: Its seed.

    Returns:
        One row per non-empty bin: ``x_low, x_high, x_mean, n, n_text, rate, ci_low,
        ci_high``.
    """
    return binned_rate(x, followed_text, bins, strategy, confidence, clusters, n_bootstrap, seed)


@dataclass(frozen=True)
class MonotonicityTest:
    """Does P(text) fall (or rise) with x? See docs/science.md, "Monotonicity test".

    Attributes:
        slope: Logistic slope b (descriptive).
        slope_ci: Bootstrap interval of b.
        p_value: Two-sided p-value of the cluster-robust score test of ``b = 0``.
        statistic: Its t statistic.
        df: Its degrees of freedom (clusters - 1, or items - 1).
        n_clusters: Clusters of the test (None: items).
        direction: ``"decreasing"``/``"increasing"`` when the test establishes it
            (p < alpha), else None.
        spearman_rho: Spearman's rho between bin mean x and bin rate (descriptive only:
            bins are not independent units, so no p-value is given).
        n_bins: Bins behind rho.
        trend: The underlying `TrendTest`.
        slope_note: Why the data cannot identify the slope ("" when they can): one
            distinct x, or outcomes completely separated by x (no finite estimate).
    """

    slope: float
    slope_ci: tuple[float, float]
    p_value: float
    statistic: float
    df: int
    n_clusters: int | None
    direction: str | None
    spearman_rho: float
    n_bins: int
    trend: TrendTest | None = field(default=None, repr=False)
    slope_note: str = ""

    @property
    def decreasing(self) -> bool:
        """Whether the test establishes a falling P(text)."""
        return self.direction == "decreasing"

    @property
    def increasing(self) -> bool:
        """Whether the test establishes a rising P(text)."""
        return self.direction == "increasing"

    def summary(self) -> str:
        """One line: ``monotonicity: <direction> (<test>); <slope>; <rho>``.

        The direction is ``not established`` unless the test establishes one; the
        slope reads ``not identified`` (with why) when the data cannot identify it.
        """
        verdict = self.direction or "not established"
        test = self.trend.describe() if self.trend is not None else f"p={self.p_value:.2g}"
        slope = (f"logistic slope not identified ({self.slope_note})" if self.slope_note else
                 f"logistic slope={self.slope:.3f} ci=[{self.slope_ci[0]:.3f}, "
                 f"{self.slope_ci[1]:.3f}]")
        return (f"monotonicity: {verdict} ({test}); {slope}; binned "
                f"spearman_rho={self.spearman_rho:.3f} over {self.n_bins} bins (descriptive)")


@dataclass(frozen=True)
class Law:
    """The fitted law for one set of decided conflict items (docs/science.md).

    Attributes:
        x_label: Axis label (e.g. ``dH_rel``).
        n: Decided items used.
        n_text: Of which text-following.
        binned: `binned_following_rate` table.
        logistic: Full-sample `LogisticFit`.
        isotonic: Full-sample `IsotonicFit` (non-increasing).
        grid: ``points`` x values spanning the observed range.
        logistic_curve: ``points`` fitted P(text) on the grid.
        logistic_band: ``(low, high)``, each ``points``: pointwise bootstrap band.
        isotonic_curve: ``points`` isotonic fit on the grid (the curve whose 0.5
            crossing is the monotone balance point).
        isotonic_band: ``(low, high)`` bootstrap band of the isotonic fit, or None.
        monotonicity: `MonotonicityTest`.
        balance_point: The logistic `BalancePoint` (the paper's display).
        bootstrap_coef: ``replicates 2`` bootstrap ``(a, b)``.
        confidence: Interval level.
        seed: Bootstrap seed.
        n_clusters: Clusters the bootstrap resampled (None: it resampled items).
        balance_point_monotone: Where the isotonic fit crosses 0.5, with its interval.
        goodness_of_fit: Hosmer-Lemeshow test of the logistic fit.
        recommendation: ``"logistic"`` or ``"monotone"``: which balance point to trust.
        recommendation_reason: One line saying why.
        estimate: The balance point reported (option ``balance_estimate``; ``auto``,
            the default, follows the recommendation).
    """

    x_label: str
    n: int
    n_text: int
    binned: pd.DataFrame
    logistic: LogisticFit
    isotonic: IsotonicFit
    grid: np.ndarray
    logistic_curve: np.ndarray
    logistic_band: tuple[np.ndarray, np.ndarray]
    isotonic_curve: np.ndarray
    isotonic_band: tuple[np.ndarray, np.ndarray] | None
    monotonicity: MonotonicityTest
    balance_point: BalancePoint
    bootstrap_coef: np.ndarray = field(repr=False)
    confidence: float = 0.95
    seed: int = 0
    n_clusters: int | None = None
    balance_point_monotone: BalancePoint | None = None
    goodness_of_fit: GoodnessOfFit | None = None
    recommendation: str = "logistic"
    recommendation_reason: str = ""
    estimate: str = "auto"

    @property
    def established(self) -> bool:
        """Whether the trend test establishes a law (a direction at level ``alpha``)."""
        return self.monotonicity.direction is not None

    @property
    def reported_balance_point(self) -> BalancePoint:
        """The balance point printed last and used for the regions.

        The ``estimate`` option's (``auto``, the default: the recommended one), but no
        number at all when no law is established: a crossing of a curve whose trend the
        data do not establish locates nothing (both crossings stay in
        `summary_lines`, as descriptive numbers).
        """
        chosen = self.balance_point
        if self.estimate == "monotone" and self.balance_point_monotone is not None:
            chosen = self.balance_point_monotone
        if self.established or not chosen.crosses:  # a curve that stays on one side says so
            return chosen
        nan = float("nan")
        test = (self.monotonicity.trend.describe() if self.monotonicity.trend is not None
                else f"p={self.monotonicity.p_value:.2g}")
        return replace(chosen, value=nan, ci_low=nan, ci_high=nan, crosses=False,
                       direction=None, reason=f"no law is established: no monotone trend "
                       f"({test}), so no balance point is reported")

    def summary_lines(self) -> list[str]:
        """The law's report lines after the trend test.

        Returns:
            Lines for the goodness of fit, both balance points, the bootstrap (replicates,
            units, Monte Carlo error of the bounds) and the estimate reported.
        """
        mono = self.balance_point_monotone
        lines = [f"goodness_of_fit: {self.goodness_of_fit.describe()}"
                 if self.goodness_of_fit is not None else "goodness_of_fit: not tested"]
        lines.append("balance points: logistic " + self.balance_point.summary("x*")
                     + ("" if mono is None else "; monotone " + mono.summary("x*")))
        unit = (f"{self.n_clusters} clusters" if self.n_clusters is not None
                else f"{self.n} items")
        errors = [f"{bp.method} +-{bp.mc_error:.3f}" for bp in (self.balance_point, mono)
                  if bp is not None and bp.crosses and math.isfinite(bp.mc_error)]
        lines.append(f"bootstrap: {self.balance_point.n_bootstrap} replicates over {unit}"
                     + (f"; Monte Carlo error of the interval bounds {', '.join(errors)}"
                        if errors else ""))
        shown = self.estimate if self.reported_balance_point.crosses else "none"
        lines.append(f"estimate: {self.recommendation_reason} (reported: {shown})")
        return lines


def _slope_note(xv: np.ndarray, yv: np.ndarray, fit: LogisticFit) -> str:
    """Why the logistic slope is not identified by these items ("" when it is)."""
    if np.ptp(xv) <= X_RESOLUTION:
        return f"one distinct x ({xv[0]:.3f}): no slope can be fitted"
    if yv.sum() in (0, yv.size):
        side = "text" if yv.sum() else "vision"
        return f"every item follows the {side}, so no slope can be fitted"
    if separated(xv, yv):
        return ("x separates the text- and vision-following items completely, so the "
                "slope has no finite estimate")
    return ""


def fit_law(
    x: Any,
    followed_text: Any,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    bins: int | Sequence[float] = 10,
    bin_strategy: BinStrategy = "quantile",
    seed: int = 0,
    grid_size: int = 101,
    isotonic_band: bool = True,
    x_label: str = "dH_rel",
    clusters: Any | None = None,
    balance_estimate: Estimate = "auto",
    alpha: float = 0.05,
) -> Law:
    """Fit the modality-following law, check it, and locate its balance points.

    Binned rates; the logistic fit with its pointwise band, Hosmer-Lemeshow test and
    balance point; the isotonic fit with its band and balance point; the cluster-robust
    trend test; and which balance point to trust. One bootstrap (``n_bootstrap``
    resamples of items, or of ``clusters``) serves every interval.

    Args:
        x: ``items`` axis values of decided conflict items (NaN entries are dropped).
        followed_text: ``items`` bools (True = text-following, False = vision).
        n_bootstrap: Bootstrap replicates.
        confidence: Level of bands and intervals.
        bins: Bin count or edges for the displayed rates.
        bin_strategy: ``"quantile"`` or ``"uniform"`` bins.
        seed: Seed of the resampling.
        grid_size: Points of the curve grid over the observed range.
        isotonic_band: Also keep the isotonic band (the refits run anyway, for the
            monotone balance point).
        x_label: Axis name carried into plots.
        clusters: ``items`` cluster labels: resample whole clusters of items whose
            outcomes are correlated, and test with cluster-robust variances.
        balance_estimate: The balance point reported: ``"auto"`` (default: the
            recommended one), or ``"logistic"`` (the paper's display) or ``"monotone"``
            to force one. Without an established trend none is reported.
        alpha: Level of the trend test and of the goodness-of-fit verdict.

    Returns:
        `Law`.

    Raises:
        ValueError: With fewer than 3 usable items or an unknown ``balance_estimate``.
    """
    if balance_estimate not in ESTIMATES:
        raise ValueError(f"balance_estimate must be one of {', '.join(ESTIMATES)}, got "
                         f"{balance_estimate!r}")
    xv, yv, codes = law_items(x, followed_text, clusters)
    n_clusters = None if codes is None else int(codes.max()) + 1
    fit = fit_logistic(xv, yv)
    weights = resample_weights(xv.size, n_bootstrap, np.random.default_rng(seed), codes)
    boot = bootstrap_logistic(xv, yv, weights, np.array([fit.intercept, fit.slope]))
    grid = np.linspace(float(xv.min()), float(xv.max()), grid_size)
    # Bands and the slope's interval keep their level with few clusters, as every
    # interval does (`modprobe.stats.intervals.expanded_level`).
    level = expanded_level(confidence, n_clusters if n_clusters is not None else xv.size)
    iso, iso_band, monotone_bp = _isotonic_part(xv, yv, weights, grid, confidence, level,
                                                n_clusters, isotonic_band)
    logistic_bp = logistic_point(xv, yv, fit, boot, confidence, n_clusters)
    binned = binned_following_rate(xv, yv.astype(bool), bins, bin_strategy, confidence,
                                   codes, n_bootstrap, seed)
    monotonicity = _monotonicity(xv, yv, codes, fit, boot, binned, level, n_clusters, alpha)
    gof = hosmer_lemeshow(yv, fit.predict(xv), clusters=codes, alpha=alpha)
    choice, why = recommend(gof, logistic_bp, monotone_bp, monotonicity)
    return Law(
        x_label=x_label, n=int(xv.size), n_text=int(yv.sum()), binned=binned, logistic=fit,
        isotonic=iso, grid=grid, logistic_curve=fit.predict(grid),
        logistic_band=_pointwise_band(expit(boot[:, :1] + boot[:, 1:] * grid), level),
        isotonic_curve=iso.predict(grid), isotonic_band=iso_band, monotonicity=monotonicity,
        balance_point=logistic_bp, bootstrap_coef=boot, confidence=confidence, seed=seed,
        n_clusters=n_clusters, balance_point_monotone=monotone_bp, goodness_of_fit=gof,
        recommendation=choice, recommendation_reason=why,
        estimate=choice if balance_estimate == "auto" else balance_estimate)


def _pointwise_band(curves: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` percentile band over the rows of ``replicates points`` curves."""
    band = np.array([percentile_interval(col, level) for col in curves.T]).T
    return band[0], band[1]


def _isotonic_part(
    xv: np.ndarray, yv: np.ndarray, weights: np.ndarray, grid: np.ndarray, confidence: float,
    level: float, n_clusters: int | None, keep_band: bool,
) -> tuple[IsotonicFit, tuple[np.ndarray, np.ndarray] | None, BalancePoint]:
    """The isotonic fit, its band on ``grid`` and its balance point.

    The band (None unless ``keep_band``) and the balance point's interval come from the
    bootstrap replicates of ``weights``.
    """
    iso = fit_isotonic(xv, yv)
    iso_cross, iso_curves, iso_brackets = isotonic_crossings(xv, yv, weights, grid=grid)
    band = _pointwise_band(iso_curves, level) if keep_band else None
    x0 = iso.crossing(0.5)
    x_range = (float(xv.min()), float(xv.max()))
    point = widen_to_brackets(
        balance_from_replicates(x0, iso_cross, x_range, confidence, "monotone",
                                x0 == math.inf, xv.size, n_clusters, x0),
        iso_brackets, level)
    return iso, band, point


def _monotonicity(
    xv: np.ndarray, yv: np.ndarray, codes: np.ndarray | None, fit: LogisticFit,
    boot: np.ndarray, binned: pd.DataFrame, level: float, n_clusters: int | None,
    alpha: float,
) -> MonotonicityTest:
    """The cluster-robust trend test, the slope's interval and the binned Spearman rho."""
    rho = float("nan")
    if len(binned) >= 3 and binned["rate"].nunique() > 1:
        rho = float(pd.Series(binned["x_mean"]).corr(binned["rate"], method="spearman"))
    trend = _trend_test(xv, yv, codes, alpha)
    return MonotonicityTest(
        slope=fit.slope, slope_ci=percentile_interval(boot[:, 1], level),
        p_value=trend.p_value, statistic=trend.statistic, df=trend.df, n_clusters=n_clusters,
        direction=trend.direction, spearman_rho=rho, n_bins=len(binned), trend=trend,
        slope_note=_slope_note(xv, yv, fit))
