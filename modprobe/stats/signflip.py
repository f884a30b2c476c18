"""Cluster sign-flip tests: exact p-values for paired differences with few clusters.

A paired difference (the same items under two conditions, or two runs on the same
items) has, under the null of no effect, a distribution symmetric about 0 within each
cluster of correlated items. Flipping the sign of each cluster's sum at random then
leaves the distribution of the total unchanged, so the share of sign patterns whose
total is at least as far from 0 as the observed one is an exact p-value, whatever the
number of clusters and however the items inside a cluster correlate (Fisher's
randomisation test; the wild cluster bootstrap with Rademacher weights). With ``G``
clusters the smallest attainable two-sided p is ``2 / 2^G`` (0.0078 with 8 clusters):
a reader sees at once how much evidence a few clusters can carry.

`sign_flip_p` is the test for one vector of paired differences; `sign_flip_pvalues`
is the vectorised engine shared with the monotone trend test
(`modprobe.stats.monotone.trend_test`, whose cluster sums are score contributions).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modprobe.stats.resample import cluster_codes

#: Up to this many clusters `sign_flip_p` enumerates every sign pattern (2^20).
EXACT_SIGN_FLIPS_UP_TO = 20
#: Random sign patterns drawn beyond the exact limit.
RANDOM_FLIPS = 4999
#: Patterns evaluated per block, so exact enumeration never holds 2^20 rows at once.
_BLOCK = 1 << 14


def _pattern_block(start: int, stop: int, n_units: int) -> np.ndarray:
    """``patterns units`` +-1 signs of patterns ``start..stop-1``.

    Bit ``k`` of the pattern's index is unit ``k``'s sign.
    """
    codes = np.arange(start, stop, dtype=np.int64)[:, None] >> np.arange(n_units)[None, :]
    return np.where(codes & 1, 1.0, -1.0)


def sign_flip_pvalues(per_cluster: np.ndarray, exact_up_to: int = EXACT_SIGN_FLIPS_UP_TO,
                      n_random: int = RANDOM_FLIPS, seed: int = 0) -> np.ndarray:
    """Two-sided sign-flip p-values of ``|sum_g s_g|`` for many datasets at once.

    The p-value is the share of sign patterns ``w`` with ``|sum_g w_g s_g| >= |sum_g
    s_g|`` (up to a relative 1e-9, so ties from rounding count as ties). Up to
    ``exact_up_to`` clusters every pattern is enumerated (the observed one included,
    so ``p >= 2 / 2^G``); beyond, ``n_random`` random patterns are drawn and the
    observed one is counted too (``p >= 1 / (n_random + 1)``).

    Args:
        per_cluster: ``datasets clusters`` cluster sums ``s_g``.
        exact_up_to: Largest G enumerated exactly.
        n_random: Random patterns beyond that.
        seed: Seed of the random patterns.

    Returns:
        ``datasets`` p-values (NaN where every ``s_g`` is 0: nothing to test).
    """
    s = np.atleast_2d(np.asarray(per_cluster, dtype=np.float64))
    n_units = s.shape[1]
    observed = np.abs(s.sum(axis=1))
    tol = 1e-9 * np.sqrt(np.sum(s**2, axis=1))
    exceed = np.zeros(s.shape[0])
    exact = n_units <= exact_up_to
    if exact:
        # |sum| is the same for a pattern and its negation: fix the last unit's sign.
        total = 1 << max(n_units - 1, 0)
        for start in range(0, total, _BLOCK):
            signs = _pattern_block(start, min(total, start + _BLOCK), n_units)
            if n_units:
                signs[:, -1] = 1.0
            exceed += np.sum(np.abs(s @ signs.T) >= (observed - tol)[:, None], axis=1)
        p = exceed / total
    else:
        rng = np.random.default_rng(seed)
        for start in range(0, n_random, _BLOCK):
            signs = rng.choice(np.array([-1.0, 1.0]), size=(min(_BLOCK, n_random - start),
                                                            n_units))
            exceed += np.sum(np.abs(s @ signs.T) >= (observed - tol)[:, None], axis=1)
        p = (exceed + 1) / (n_random + 1)
    return np.where(tol > 0, np.minimum(p, 1.0), np.nan)


def sign_flip_p(values: Any, clusters: Any | None = None, *,
                exact_up_to: int = EXACT_SIGN_FLIPS_UP_TO, n_random: int = RANDOM_FLIPS,
                seed: int = 0) -> float:
    """Exact two-sided cluster sign-flip p-value that paired differences have mean 0.

    The statistic is the sum of the cluster sums, i.e. the item-weighted mean of
    ``values`` (the mean the toolkit prints), and the null is that every cluster's sum
    is symmetric about 0 (no paired effect; items inside a cluster may correlate in
    any way). Each cluster's sum has its sign flipped as a whole: with ``G`` clusters
    all ``2^G`` patterns are enumerated up to ``exact_up_to`` clusters (the p-value is
    then exact, its smallest value ``2 / 2^G``), and ``n_random`` random patterns are
    drawn beyond. Without ``clusters`` every item is its own cluster. NaN values are
    left out with their labels.

    Args:
        values: ``items`` paired differences (e.g. perturbed minus clean, 0/+-1).
        clusters: ``items`` cluster labels, or None for independent items.
        exact_up_to: Largest number of clusters enumerated exactly.
        n_random: Random sign patterns beyond that.
        seed: Seed of the random patterns.

    Returns:
        The p-value; NaN when no value is left or every difference is 0.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(x)
    if not keep.any():
        return math.nan
    if clusters is None:
        codes = np.arange(int(keep.sum()))
    else:
        codes = cluster_codes(clusters, x.size, keep=keep)
    x = x[keep]
    per_cluster = np.bincount(codes, weights=x, minlength=int(codes.max()) + 1)
    return float(sign_flip_pvalues(per_cluster[None], exact_up_to, n_random, seed)[0])


def smallest_p(n_clusters: int, exact_up_to: int = EXACT_SIGN_FLIPS_UP_TO,
               n_random: int = RANDOM_FLIPS) -> float:
    """The smallest p-value `sign_flip_p` can return with ``n_clusters`` clusters.

    The floor below which no data can push the test: report it beside a p-value from
    few clusters (with 5 clusters no p-value is under 0.0625).

    Args:
        n_clusters: Clusters with a value (items, without clusters).
        exact_up_to: `sign_flip_p`'s limit of exact enumeration.
        n_random: Its random sign patterns beyond that limit.

    Returns:
        ``2 / 2**n_clusters`` when the patterns are enumerated, else
        ``1 / (n_random + 1)``.
    """
    if n_clusters <= exact_up_to:
        return 2.0 / 2**n_clusters
    return 1.0 / (n_random + 1)
