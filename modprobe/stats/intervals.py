"""Intervals: the one place modprobe computes a confidence interval.

Every analysis (following rates, the law's balance points, oscillation means, interference
accuracy and flip rates, sabotage rates) reports its uncertainty through these helpers so
that one choice, documented in docs/science.md, governs them all:

- the mean of a quantity of a declared kind (`mean_interval`): a rate in [0, 1]
  (Wilson for independent 0/1 items, else Korn and Graubard's effective-size
  Clopper-Pearson interval, `modprobe.stats.cluster_rate`), a paired difference in
  [-1, 1] (the MOVER combination of its two parts' rate intervals), or a continuous
  mean (a studentised cluster bootstrap on the CR2 cluster-robust error, at least as
  wide as the CR2 Student interval, `modprobe.stats.cluster_mean`); each keeps its level
  with 8 clusters on the settings measured in docs/science.md;
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
from modprobe.stats.cluster_rate import cluster_rate_interval, paired_rate_interval
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
    """The expanded percentile interval of bootstrap ``replicates``, with error and flags.

    The interval carries the Monte Carlo error of its bounds.

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
    """Vectorised `wilson_interval` over arrays of k and n.

    Args:
        successes: Success counts k (array-like, broadcast against ``trials``).
        trials: Trial counts n.
        confidence: Coverage level.

    Returns:
        ``(low, high)`` arrays of the broadcast shape, each bound clipped to [0, 1] and
        never excluding ``k / n``; NaN where n = 0.
    """
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


#: The kinds of quantity `mean_interval` knows, each with its interval method.
MEAN_KINDS = ("rate", "paired", "continuous")
_KIND_RANGES = {"rate": (0.0, 1.0), "paired": (-1.0, 1.0)}


def _declared_kind(kind: str | None, x: np.ndarray) -> str:
    """The kind of the quantity, checked against its values' range.

    None (an undeclared caller) keeps the old rule: 0/1 values are a rate, anything
    else continuous; every analysis of the toolkit declares its kind.
    """
    if kind is None:
        return "rate" if np.all((x == 0) | (x == 1)) else "continuous"
    if kind not in MEAN_KINDS:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(MEAN_KINDS)}")
    low, high = _KIND_RANGES.get(kind, (-math.inf, math.inf))
    if x.size and (x.min() < low or x.max() > high):
        raise ValueError(f"kind={kind!r} needs values in [{low:g}, {high:g}], got "
                         f"[{x.min():g}, {x.max():g}]; declare kind='continuous'")
    return kind


def mean_interval(
    values: Any,
    clusters: Any | None = None,
    *,
    kind: str | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of per-item values with its interval, by the kind of the quantity.

    Serves every mean modprobe reports over items; the caller declares what it is,
    and the kind, never the values seen, picks the method (docs/science.md,
    "Intervals and clusters"):

    - ``"rate"``: values in [0, 1] (accuracy, a flip rate, a sabotage rate, each
      possibly averaged over perturbation draws): Korn and Graubard's effective-size
      Clopper-Pearson interval (`modprobe.stats.cluster_rate.cluster_rate_interval`);
      0/1 values of independent items get the Wilson interval;
    - ``"paired"``: values in [-1, 1], the same items' difference between two
      conditions or runs: the MOVER combination of the rate intervals of its positive
      and negative parts (`modprobe.stats.cluster_rate.paired_rate_interval`);
    - ``"continuous"``: anything else (counts, log-odds): with clusters, a studentised
      cluster bootstrap on the CR2 error never narrower than the CR2 Student interval
      (`modprobe.stats.cluster_mean.cluster_t_interval`); without, a bootstrap over
      items.

    Independent items (no ``clusters``) count as clusters of one. All keep their level
    with 8 clusters on the measured settings. NaN values are left out (with their
    cluster labels).

    Args:
        values: ``items`` numbers (bools allowed).
        clusters: ``items`` cluster labels, or None for independent items.
        kind: ``"rate"``, ``"paired"`` or ``"continuous"``; None: a rate when every
            value is 0 or 1, else continuous (the rule of undeclared callers).
        confidence: Nominal coverage.
        n_bootstrap: Bootstrap replicates (continuous means only).
        seed: Bootstrap seed.

    Returns:
        An `Interval`; not identified (with the reason in ``note``) when no value is
        left, or when ``clusters`` leaves fewer than two clusters.

    Raises:
        ValueError: An unknown ``kind``, or values outside its range.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(x)
    n = int(keep.sum())
    if n == 0:
        return not_identified("no items", confidence=confidence)
    x = x[keep]
    kind = _declared_kind(kind, x)
    estimate = float(x.mean())
    if clusters is None:
        codes = np.arange(n)
        if kind == "rate" and np.all((x == 0) | (x == 1)):
            low, high = wilson_interval(int(x.sum()), n, confidence)
            return Interval(estimate, low, high, confidence, "wilson", n, None)
    else:
        codes = cluster_codes(clusters, keep.size, keep=keep)
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        unit = "item: no spread" if clusters is None else (
            "cluster: the spread between clusters is unknown")
        return not_identified(f"1 {unit}", n=n, confidence=confidence, estimate=estimate,
                              n_clusters=None if clusters is None else 1)
    if kind == "rate":
        return cluster_rate_interval(x, codes, confidence)
    if kind == "paired":
        return paired_rate_interval(x, codes, confidence)
    if clusters is not None:
        return cluster_t_interval(x, codes, confidence=confidence,
                                  n_bootstrap=n_bootstrap, seed=seed)
    weights = resample_weights(n, n_bootstrap, np.random.default_rng(seed))
    return bootstrap_interval((weights @ x) / n, estimate, confidence=confidence,
                              method="bootstrap", n=n)
