"""The interval of a continuous clustered mean (counts, masses), for as few as 8 clusters.

The mean of items in clusters is a ratio of cluster totals, ``m = sum_g S_g / sum_g n_g``.
Its interval is a studentised (bootstrap-t) cluster bootstrap with the CR2
(Bell and McCaffrey 2002) cluster-robust standard error, never narrower on either side
than the CR2 Student interval:

- CR2 variance of an intercept-only fit: ``V = sum_g (S_g - m n_g)^2 / (1 - n_g / n) / n^2``
  (the cluster's residual total inflated by its leverage ``n_g / n``; with equal clusters
  this is the usual ``G / (G - 1)`` correction);
- Student interval: ``m +- t_nu sqrt(V)``, ``nu`` Bell and McCaffrey's Satterthwaite
  degrees of freedom (``G - 1`` for equal clusters, fewer for unequal ones);
- bootstrap-t: whole clusters resampled, ``t* = (m* - m) / se*`` with the replicate's own
  CR2 error; the interval ``[m - q_hi se, m - q_lo se]`` follows the skew of the data (a
  count's mean with a few heavy clusters), which a symmetric interval misses on one side;
- the union of the two: with 8 clusters a bootstrap can draw only a few thousand distinct
  samples and its t quantiles are themselves noisy, so the Student interval is a floor.

Measured on skewed beta-binomial and Gamma-Poisson clusters (`modprobe.analysis.
coverage_table`, docs/science.md "Intervals and clusters").
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from modprobe.stats.interval_core import Interval, quantile_mc_error
from modprobe.stats.resample import resample_weights


def cr2_variance(totals: np.ndarray, sizes: np.ndarray,
                 counts: np.ndarray | None = None) -> np.ndarray:
    """CR2 variance of the ratio mean ``sum S / sum n``, per row of clusters.

    Args:
        totals: ``[replicates] clusters`` cluster totals ``S_g``.
        sizes: Cluster sizes ``n_g`` (broadcast against ``totals``).
        counts: How many times each cluster was drawn (a bootstrap replicate; None: once).

    Returns:
        ``[replicates]`` variances (0 for a replicate whose clusters share one mean).
    """
    counts = np.ones_like(totals) if counts is None else counts
    n = (counts * sizes).sum(axis=-1, keepdims=True)
    mean = (counts * totals).sum(axis=-1, keepdims=True) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = counts * (totals - mean * sizes) ** 2 / (1 - sizes / n)
    return np.where(counts > 0, terms, 0.0).sum(axis=-1) / n[..., 0] ** 2


def bell_mccaffrey_df(sizes: np.ndarray) -> float:
    """Satterthwaite degrees of freedom of the CR2 variance of a mean.

    Bell and McCaffrey (2002), under independent equal-variance items: ``G - 1`` for
    equal clusters, fewer when a few clusters carry most items.
    """
    n = float(sizes.sum())
    weight = 1.0 / (1.0 - sizes / n)
    # trace and squared Frobenius norm of W^1/2 (diag(n_g) - n n^T / n) W^1/2, in O(G)
    trace = float(np.sum(weight * sizes) - np.sum(weight * sizes**2) / n)
    frobenius = float(np.sum(weight**2 * sizes**2) - 2 * np.sum(weight**2 * sizes**3) / n
                      + np.sum(weight * sizes**2) ** 2 / n**2)
    return trace**2 / frobenius


def cluster_t_interval(values: np.ndarray, codes: np.ndarray, *, confidence: float,
                       n_bootstrap: int, seed: int) -> Interval:
    """Interval of the mean of clustered values: bootstrap-t on the CR2 error.

    At least as wide as the CR2 Student interval on each side (module docstring).

    Args:
        values: ``items`` finite numbers.
        codes: ``items`` cluster codes 0..G-1 (G >= 2).
        confidence: Nominal coverage.
        n_bootstrap: Bootstrap replicates.
        seed: Bootstrap seed.

    Returns:
        An `Interval` with method ``"cluster-bootstrap-t"`` and the Monte Carlo error of
        its bootstrap bounds; a bound is infinite when its bootstrap quantile falls among
        replicates that have no spread (very few clusters).
    """
    n, n_clusters = values.size, int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    totals = np.bincount(codes, weights=values, minlength=n_clusters)
    estimate = float(totals.sum() / n)
    se = math.sqrt(float(cr2_variance(totals, sizes)))
    alpha = 1.0 - confidence
    df = bell_mccaffrey_df(sizes)
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    low, high, mc = estimate - half, estimate + half, float("nan")
    if se > 0:
        first = np.unique(codes, return_index=True)[1]
        counts = resample_weights(n, n_bootstrap, np.random.default_rng(seed), codes)[:, first]
        boot_mean = (counts @ totals) / (counts @ sizes)
        boot_se = np.sqrt(cr2_variance(totals, sizes, counts))
        # Rounding leaves ~1e-17 where clusters share one mean: that is no spread either.
        boot_se[boot_se <= 1e-9 * se] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = (boot_mean - estimate) / boot_se
        # A replicate of identical clusters has no spread: its t is +-inf (kept in order).
        t_star = t_star[~np.isnan(t_star)]
        if t_star.size:
            q_low, q_high = np.quantile(np.clip(t_star, -1e300, 1e300),
                                        [alpha / 2, 1 - alpha / 2])
            # A quantile that reaches such a replicate leaves its side unbounded (with
            # 3 clusters 1 replicate in 9 draws one cluster thrice): say inf, not 1e299.
            finite = t_star[np.isfinite(t_star)]
            if not finite.size or q_high > finite.max():
                q_high = math.inf
            if not finite.size or q_low < finite.min():
                q_low = -math.inf
            low = min(low, estimate - float(q_high) * se)
            high = max(high, estimate - float(q_low) * se)
            mc = se * max(quantile_mc_error(t_star, alpha / 2),
                          quantile_mc_error(t_star, 1 - alpha / 2))
    return Interval(estimate, low, high, confidence, "cluster-bootstrap-t", n, n_clusters,
                    note=f"CR2 error, {df:.1f} degrees of freedom", mc_error=mc)
