"""Intervals: the one place modprobe computes a confidence interval.

Every analysis (following rates, the law's balance points, oscillation means, interference
accuracy and flip rates, sabotage rates) reports its uncertainty through these helpers so
that one choice, documented in docs/science.md, governs them all:

- a proportion of independent items: the Wilson score interval;
- a proportion over items that share a cluster (one generator group, one source
  image): the cluster-adjusted Wilson interval (effective sample size, Student's t with
  G - 1 degrees of freedom);
- the mean of other values (paired differences, counts) over clustered items: a
  studentised cluster bootstrap on the CR2 cluster-robust error, at least as wide as the
  CR2 Student interval (`modprobe.stats.cluster_mean`), which keeps its level with 8
  skewed clusters;
- anything else: a bootstrap (whole clusters resampled, `modprobe.stats.resample`)
  with the expanded percentile interval (`expanded_level`);
- a quantity the data cannot identify (no items, fewer than two clusters): an `Interval`
  whose ``identified`` is False and whose ``note`` says why, never a zero-width interval.

Every bootstrap interval (`bootstrap_interval`) carries the Monte Carlo error of its
bounds (`quantile_mc_error`: how far a bound would move with another seed), and flags a
bound that is open (replicates running to infinity) or lies outside the range the data
can support (e.g. the observed axis range, or [-2, 2] for dH_rel).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from modprobe.stats.cluster_mean import cluster_t_interval
from modprobe.stats.interval_core import (  # noqa: F401  (re-exported: the public names)
    Interval,
    _json_number,
    _quantiles,
    not_identified,
    percentile_interval,
    quantile_mc_error,
)
from modprobe.stats.resample import cluster_codes, resample_weights

#: Bootstrap replicates used unless a caller asks for another number.
DEFAULT_RESAMPLES = 2000


def expanded_level(confidence: float, n_units: int | None) -> float:
    """The percentile level that keeps ``confidence`` with ``n_units`` independent units.

    Hesterberg's expanded percentile interval (Hesterberg 2015, "What teachers should
    know about the bootstrap"): the plain percentile interval of a mean is as narrow as
    a z interval with the plug-in variance, which undercovers with few units (0.86-0.88
    at 8 clusters, nominal 0.95). Taking the percentiles at the level whose normal
    quantile is ``sqrt(G / (G - 1)) t_{G-1}`` instead of ``z`` applies the small-sample
    variance correction and Student's quantile while keeping the bootstrap's shape
    (asymmetry, a range such as [0, 1]). With 8 units 0.95 becomes 0.9885, with 12
    0.9785, with 100 0.9539 (docs/science.md, "Intervals and clusters").

    Args:
        confidence: Nominal level.
        n_units: Independent units G (clusters, or items); None or < 2: unchanged.

    Returns:
        The level whose percentiles to take.
    """
    if n_units is None or n_units < 2:
        return confidence
    alpha = 1.0 - confidence
    z = math.sqrt(n_units / (n_units - 1)) * float(stats.t.ppf(1 - alpha / 2, n_units - 1))
    return float(1.0 - 2.0 * stats.norm.sf(z))


def bootstrap_interval(
    replicates: Any,
    estimate: float,
    *,
    confidence: float = 0.95,
    method: str = "bootstrap",
    n: int = 0,
    n_clusters: int | None = None,
    bounds: tuple[float, float] | None = None,
    bounds_name: str = "the observed range",
    note: str = "",
) -> Interval:
    """The expanded percentile interval of bootstrap ``replicates``, with its Monte
    Carlo error and flags.

    The one bootstrap interval of modprobe: `mean_interval`, the law's balance points,
    the oscillation summaries and the following rates all end here. The percentiles
    are taken at `expanded_level` for the number of resampled units (``n_clusters``, or
    ``n`` items), so the interval keeps its level with few clusters.

    Args:
        replicates: ``replicates`` statistic values (NaN: replicate without a value;
            +-inf: a replicate whose statistic runs off to infinity).
        estimate: The full-sample estimate.
        confidence: Nominal coverage.
        method: ``"bootstrap"`` or ``"cluster-bootstrap"``.
        n: Items.
        n_clusters: Clusters resampled (None: items).
        bounds: The range the statistic can be supported by (e.g. the observed x
            range): a bound outside it is flagged.
        bounds_name: How to name ``bounds`` in the flag.
        note: Caveat carried along.

    Returns:
        An `Interval` with ``mc_error`` and ``flags``.
    """
    values = np.asarray(replicates, dtype=np.float64).reshape(-1)
    level = expanded_level(confidence, n_clusters if n_clusters is not None else n)
    low, high = percentile_interval(values, level)
    alpha = 1.0 - level
    mc = max(quantile_mc_error(values, alpha / 2), quantile_mc_error(values, 1 - alpha / 2))
    flags: list[str] = []
    finite = values[~np.isnan(values)]
    if finite.size:
        share_inf = float(np.mean(np.isinf(finite)))
        if math.isinf(low) or math.isinf(high):
            flags.append(f"open: {share_inf:.0%} of replicates never reach a value")
    if bounds is not None and (math.isfinite(low) or math.isfinite(high)):
        lo_b, hi_b = bounds
        outside = [v for v in (low, high) if math.isfinite(v) and not lo_b <= v <= hi_b]
        if outside:
            flags.append(f"ci leaves {bounds_name} [{lo_b:.3f}, {hi_b:.3f}]")
    return Interval(float(estimate), low, high, confidence, method, n, n_clusters, note,
                    mc_error=mc, flags=tuple(flags))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = k/n`` and
    ``z`` the two-sided normal quantile. Unlike the Wald interval it stays inside [0, 1]
    and is not degenerate at ``k = 0`` or ``k = n``.

    Args:
        successes: k.
        trials: n (``(nan, nan)`` when 0).
        confidence: Coverage level.

    Returns:
        ``(low, high)``.
    """
    low, high = wilson_intervals(np.array([successes]), np.array([trials]), confidence)
    return float(low[0]), float(high[0])


def wilson_intervals(
    successes: Any, trials: Any, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `wilson_interval` over arrays of k and n (NaN where n = 0)."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        center = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
        # Rounding can leave the estimate a hair outside at k = 0 or k = n.
        low = np.where(n > 0, np.minimum(np.maximum(0.0, center - half), p), np.nan)
        high = np.where(n > 0, np.maximum(np.minimum(1.0, center + half), p), np.nan)
    return low, high


def cluster_wilson_interval(values: np.ndarray, codes: np.ndarray,
                            confidence: float = 0.95) -> Interval:
    """Wilson interval of a proportion over clustered items, at the clusters' level.

    Korn and Graubard's (1998) small-sample interval for a proportion from clustered
    data, in its Wilson form: the items count as ``n_eff = p (1 - p) / V`` independent
    ones (at most ``n``), ``V`` the cluster-robust variance of ``p = sum_g S_g / n``,
    ``V = G / (G - 1) sum_g (S_g - p n_g)^2 / n^2``, and Student's quantile with
    ``G - 1`` degrees of freedom replaces the normal one. Unlike a bootstrap or a
    t interval it stays inside [0, 1] and widens towards 0.5 where a few clusters
    happen to agree, which keeps its level for small rates with 8 clusters
    (beta-binomial simulation: `modprobe.analysis.following.coverage_table`).

    Args:
        values: ``items`` 0/1 values.
        codes: ``items`` cluster codes 0..G-1 (G >= 2).
        confidence: Nominal coverage.

    Returns:
        An `Interval` with method ``"cluster-wilson"``.
    """
    n, n_clusters = values.size, int(codes.max()) + 1
    p = float(values.mean())
    sizes = np.bincount(codes, minlength=n_clusters)
    sums = np.bincount(codes, weights=values, minlength=n_clusters)
    var = n_clusters / (n_clusters - 1) * float(np.sum((sums - p * sizes) ** 2)) / n**2
    n_eff = float(n) if var <= 0 else min(float(n), p * (1 - p) / var)
    z = float(stats.t.ppf(0.5 + confidence / 2, n_clusters - 1))
    denom = 1 + z**2 / n_eff
    centre = (p + z**2 / (2 * n_eff)) / denom
    half = z * math.sqrt(p * (1 - p) / n_eff + z**2 / (4 * n_eff**2)) / denom
    low, high = min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)
    return Interval(p, low, high, confidence, "cluster-wilson", n, n_clusters,
                    note=f"effective sample size {n_eff:.0f}")


def mean_interval(
    values: Any,
    clusters: Any | None = None,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of per-item values with its interval, cluster-aware.

    Serves every rate modprobe reports over items: accuracy (values 0/1 = correct), a
    flip rate (1 = the answer changed under a perturbation: pair the clean and perturbed
    answers per item first), a sabotage rate, an oscillation mean.

    Without ``clusters``, 0/1 values get the Wilson interval and other values a
    bootstrap over items. With ``clusters`` (one label per item), 0/1 values get the
    cluster-adjusted Wilson interval (`cluster_wilson_interval`) and other values a
    studentised cluster bootstrap (`modprobe.stats.cluster_mean.cluster_t_interval`:
    whole clusters resampled, CR2 error, never narrower than the CR2 Student
    interval), so items that share a cluster are not
    counted as independent evidence; both keep their level with few clusters
    (docs/science.md, "Intervals and clusters"). NaN values are left out (with their
    cluster labels).

    Args:
        values: ``items`` numbers (bools allowed).
        clusters: ``items`` cluster labels, or None for independent items.
        confidence: Nominal coverage.
        n_bootstrap: Bootstrap replicates (ignored by Wilson).
        seed: Bootstrap seed.

    Returns:
        An `Interval`; not identified (with the reason in ``note``) when no value is
        left, or when ``clusters`` leaves fewer than two clusters.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(x)
    n = int(keep.sum())
    if n == 0:
        return not_identified("no items", confidence=confidence)
    x = x[keep]
    estimate = float(x.mean())
    if clusters is not None:
        codes = cluster_codes(clusters, keep.size, keep=keep)
        n_clusters = int(codes.max()) + 1
        if n_clusters < 2:
            return not_identified(f"{n_clusters} cluster: the spread between clusters is "
                                  "unknown", n=n, n_clusters=n_clusters,
                                  confidence=confidence, estimate=estimate)
        if np.all((x == 0) | (x == 1)):
            return cluster_wilson_interval(x, codes, confidence)
        return cluster_t_interval(x, codes, confidence=confidence,
                                  n_bootstrap=n_bootstrap, seed=seed)
    if np.all((x == 0) | (x == 1)):
        low, high = wilson_interval(int(x.sum()), n, confidence)
        return Interval(estimate, low, high, confidence, "wilson", n, None)
    if n < 2:
        return not_identified("one item: no spread", n=n, confidence=confidence,
                              estimate=estimate)
    weights = resample_weights(n, n_bootstrap, np.random.default_rng(seed))
    return bootstrap_interval((weights @ x) / n, estimate, confidence=confidence,
                              method="bootstrap", n=n)
