"""Intervals of rates and of paired differences of rates over clustered items.

A *rate* is the mean of per-item values in [0, 1]: 0/1 outcomes (correct, flipped) or
their average over perturbation draws. Its interval is Korn and Graubard's (1998)
Clopper-Pearson interval with an effective sample size:

- ``V``: the CR2 cluster-robust variance of the rate (`modprobe.stats.cluster_mean`);
- ``n_eff = p (1 - p) / V``, at most ``n`` and at most the items of the clusters that
  saw the rarer outcome (an event when ``p <= 1/2``, a non-event otherwise) plus one
  per cluster that did not, shrunk by ``(z / t_nu)^2`` with ``nu`` Bell and McCaffrey's
  degrees of freedom, so that few clusters widen it;
- the Clopper-Pearson (beta) bounds of ``n_eff p`` successes in ``n_eff`` trials.

Unlike a symmetric or bootstrap interval it stays inside [0, 1], is asymmetric near 0
and 1, and never collapses when no cluster saw an event, which is what keeps its level
for rare events with 8 clusters. The second cap is for rare events in few clusters:
when one or two clusters hold every event, ``V`` rests on one or two events and can
be far too small (a design effect near 1 from a cluster with a single event), while
a cluster without events cannot show how its items would share them, so the cap
counts it as one trial, as if its items were all-or-none, and a cluster with events
as at most its items. It leaves many-item clusters with common events, and
independent items, as they were. With no event at all (``V = 0``) the size stays
``n``, the usual convention.

A *paired* difference is the mean of per-item values in [-1, 1] (a flip under B minus a
flip under A on the same item). It is the difference of two rates, the positive and the
negative parts ``max(d, 0)`` and ``max(-d, 0)``; its interval is Newcombe's MOVER
combination of their two rate intervals with their cluster-robust correlation (Zou and
Donner 2008), which keeps the asymmetry of each side when flips are rare.

Measured on beta-binomial clusters: docs/science.md, "Intervals and clusters".
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from modprobe.stats.cluster_mean import bell_mccaffrey_df, cr2_variance
from modprobe.stats.interval_core import Interval


def _cluster_moments(values: np.ndarray, codes: np.ndarray) -> tuple[float, np.ndarray,
                                                                     np.ndarray]:
    """The mean, the cluster sizes and the leverage-scaled cluster residual totals."""
    n_clusters = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    totals = np.bincount(codes, weights=values, minlength=n_clusters)
    mean = float(totals.sum() / values.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (totals - mean * sizes) / np.sqrt(1 - sizes / values.size)
    return mean, sizes, np.nan_to_num(scaled)


def _korn_graubard(p: float, variance: float, n: int, df: float, confidence: float,
                   most: float | None = None) -> tuple[float, float, float]:
    """``(low, high, n_eff)``: the Clopper-Pearson bounds at the effective size.

    ``most``: a further cap on the effective size when the variance is positive (the
    items of the clusters that saw the rarer outcome plus one per other cluster;
    None: none).
    """
    alpha = 1.0 - confidence
    n_eff = float(n) if variance <= 0 else min(float(n), p * (1 - p) / variance,
                                                float(n) if most is None else most)
    n_eff *= (stats.norm.ppf(alpha / 2) / stats.t.ppf(alpha / 2, df)) ** 2
    low = float(stats.beta.ppf(alpha / 2, n_eff * p, n_eff * (1 - p) + 1)) if p > 0 else 0.0
    high = float(stats.beta.ppf(1 - alpha / 2, n_eff * p + 1, n_eff * (1 - p))) if p < 1 \
        else 1.0
    return min(low, p), max(high, p), n_eff


def cluster_rate_interval(values: np.ndarray, codes: np.ndarray,
                          confidence: float = 0.95) -> Interval:
    """Korn-Graubard interval of a rate over clustered items (module docstring).

    Args:
        values: ``items`` values in [0, 1] (0/1 outcomes or their averages over draws).
        codes: ``items`` cluster codes 0..G-1 (G >= 2; one item per cluster for
            independent items).
        confidence: Nominal coverage.

    Returns:
        An `Interval` with method ``"korn-graubard"``.
    """
    p, sizes, _ = _cluster_moments(values, codes)
    totals = np.bincount(codes, weights=values, minlength=sizes.size)
    variance = float(cr2_variance(totals, sizes))
    df = bell_mccaffrey_df(sizes)
    # a cluster that never saw the rarer outcome counts as one trial (all-or-none)
    seen = totals > 0 if p <= 0.5 else totals < sizes * (1 - 1e-12)
    low, high, n_eff = _korn_graubard(p, variance, values.size, df, confidence,
                                      most=float(sizes[seen].sum() + (~seen).sum()))
    return Interval(p, low, high, confidence, "korn-graubard", values.size, sizes.size,
                    note=f"effective sample size {n_eff:.0f} ({int(seen.sum())} clusters saw "
                    f"the rarer outcome), {df:.1f} degrees of freedom")


def paired_rate_interval(values: np.ndarray, codes: np.ndarray,
                         confidence: float = 0.95) -> Interval:
    """MOVER interval of a paired difference of rates over clustered items.

    The difference ``p_+ - p_-`` of the rates of the positive and negative parts, with
    ``L = d - sqrt((p_+ - l_+)^2 + (u_- - p_-)^2 - 2 r (p_+ - l_+)(u_- - p_-))`` and
    ``U`` likewise (Newcombe 1998; Zou and Donner 2008), ``[l, u]`` the parts'
    `cluster_rate_interval` bounds and ``r`` the CR2 correlation of the two rates.

    Args:
        values: ``items`` paired differences in [-1, 1].
        codes: ``items`` cluster codes 0..G-1 (G >= 2).
        confidence: Nominal coverage.

    Returns:
        An `Interval` with method ``"paired-mover"``.
    """
    parts = (np.maximum(values, 0.0), np.maximum(-values, 0.0))
    up, down = (cluster_rate_interval(part, codes, confidence) for part in parts)
    scaled = [_cluster_moments(part, codes)[2] for part in parts]
    norms = [float(np.sqrt(np.sum(s**2))) for s in scaled]
    r = float(np.sum(scaled[0] * scaled[1]) / (norms[0] * norms[1])) if min(norms) > 0 else 0.0
    d = up.estimate - down.estimate
    below = (up.estimate - up.low, down.high - down.estimate)
    above = (up.high - up.estimate, down.estimate - down.low)
    low = d - math.sqrt(max(below[0] ** 2 + below[1] ** 2 - 2 * r * below[0] * below[1], 0.0))
    high = d + math.sqrt(max(above[0] ** 2 + above[1] ** 2 - 2 * r * above[0] * above[1], 0.0))
    return Interval(d, low, high, confidence, "paired-mover", values.size, up.n_clusters,
                    note=f"rates up {up.estimate:.3f}, down {down.estimate:.3f}, "
                    f"correlation {r:+.2f}")
