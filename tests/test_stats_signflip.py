"""The cluster sign-flip test: exact values, and uniform p under a planted null."""

import math

import numpy as np
import pytest

from modprobe.stats import sign_flip_p
from modprobe.stats.signflip import sign_flip_pvalues, smallest_p


def test_exact_p_by_hand():
    # Three clusters with sums 3, 1, 2: |total| = 6 is reached only by all + (or all -).
    values = [1, 1, 1, 1, 1, 1]
    clusters = ["a", "a", "a", "b", "c", "c"]
    assert sign_flip_p(values, clusters) == pytest.approx(2 / 8)
    # Sums 3, 1, -2: |total| 2; patterns (of 8) with |sum| >= 2: +3+1-2=2, +3-1-2=0,
    # +3+1+2=6, +3-1+2=4 and their negations -> 6 of 8.
    assert sign_flip_p([1, 1, 1, 1, -1, -1], clusters) == pytest.approx(6 / 8)
    assert smallest_p(8) == pytest.approx(2 / 256)


def test_clusters_count_as_units_not_items():
    values = np.r_[np.full(50, 1.0), np.full(50, 1.0)]
    assert sign_flip_p(values) < 1e-3  # 100 independent items
    assert sign_flip_p(values, clusters=[0] * 50 + [1] * 50) == pytest.approx(0.5)


def test_degenerate_inputs():
    assert math.isnan(sign_flip_p([0.0, 0.0, 0.0]))
    assert math.isnan(sign_flip_p([np.nan, np.nan]))
    assert sign_flip_p([1.0, np.nan], clusters=["a", "b"]) == pytest.approx(1.0)


def test_random_patterns_beyond_the_exact_limit():
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 1.0, 300)
    clusters = np.repeat(np.arange(30), 10)
    p = sign_flip_p(values, clusters)
    assert 1 / 5000 <= p < 0.05
    assert sign_flip_p(values, clusters, seed=1) == pytest.approx(p, abs=0.02)


@pytest.mark.parametrize("n_clusters", [8, 12])
def test_uniform_under_the_null_with_correlated_clusters(n_clusters):
    """Paired 0/+-1 differences with a cluster-level shared effect of mean 0: the
    p-value's distribution is uniform on its lattice (rejection rate <= alpha)."""
    rng = np.random.default_rng(n_clusters)
    reps, size = 400, 15
    codes = np.repeat(np.arange(n_clusters), size)
    sums = np.empty((reps, n_clusters))
    for r in range(reps):
        shift = rng.normal(0, 0.25, n_clusters)  # clusters differ, symmetric about 0
        p_up = np.clip(0.2 + shift, 0, 1)[codes]
        p_down = np.clip(0.2 - shift, 0, 1)[codes]
        u = rng.random(codes.size)
        diff = (u < p_up).astype(float) - ((u >= p_up) & (u < p_up + p_down)).astype(float)
        sums[r] = np.bincount(codes, weights=diff, minlength=n_clusters)
    p = sign_flip_pvalues(sums)
    for alpha in (0.05, 0.1, 0.25, 0.5):
        rate = float(np.mean(p <= alpha))
        assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps), (alpha, rate)
        assert rate >= alpha - 3 * math.sqrt(alpha * (1 - alpha) / reps) - 2 / 2**n_clusters
    # and power: the same clusters with a planted effect of +0.6 per item
    shifted = sums + 0.6 * size
    assert np.mean(sign_flip_pvalues(shifted) <= 0.05) > 0.5
