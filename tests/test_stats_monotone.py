"""modprobe.stats.monotone: the isotonic fit, its crossing and the trend test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modprobe.analysis.following.simulate import simulate_clustered_law, simulate_step_law
from modprobe.stats.monotone import fit_isotonic, trend_scores, trend_test
from modprobe.stats.resample import cluster_codes


def test_isotonic_fit_and_centred_crossing_by_hand() -> None:
    fit = fit_isotonic([0.0, 1.0, 2.0, 3.0], [True, False, True, False])
    np.testing.assert_allclose(fit.y, [1.0, 0.5, 0.5, 0.0])
    cx, cy = fit.centred()
    np.testing.assert_allclose(cx, [0.0, 1.5, 3.0])
    np.testing.assert_allclose(cy, [1.0, 0.5, 0.0])
    assert fit.crossing(0.5) == 1.5  # the block exactly at 0.5: its centre
    assert fit.crossing(0.75) == pytest.approx(0.5)  # on the jump from 1.0 at 0 to 0.5 at 1
    assert fit_isotonic([0.0, 1.0], [True, True]).crossing(0.5) == math.inf
    assert fit_isotonic([0.0, 1.0], [False, False]).crossing(0.5) == -math.inf
    up = fit_isotonic([0.0, 1.0, 2.0], [False, False, True], increasing=True)
    assert up.crossing(0.5) == pytest.approx(1.5)  # on the jump from (1, 0) to (2, 1)


def test_trend_test_finds_a_planted_trend_in_both_directions() -> None:
    rng = np.random.default_rng(0)
    x, y, c = simulate_clustered_law(20, 30, 0.0, -2.0, 0.5, rng)
    down = trend_test(x, y, clusters=c)
    assert down.direction == "decreasing" and down.df == 19 and down.clustered
    up = trend_test(-x, y, clusters=c)
    assert up.direction == "increasing"
    assert "random sign flips over 20 clusters" in down.describe()


def test_trend_test_false_positive_rate_on_clustered_data_without_effect() -> None:
    # 2,000 datasets of 12 clusters x 40 items (the organism's 12 generator groups):
    # outcomes share a logit shift per cluster (sd 1.5) and x is clustered too (items of
    # a group have similar entropies), but x has no effect. The cluster-robust test
    # claims a trend at its nominal 5%; the same statistic with items as units does not.
    rng = np.random.default_rng(1)
    n_data, n_clusters, per = 2000, 12, 40
    xs, ys = np.empty((n_data, n_clusters * per)), np.empty((n_data, n_clusters * per))
    for d in range(n_data):
        x, y, clusters = simulate_clustered_law(n_clusters, per, 0.0, 0.0, 1.5, rng,
                                                x_range=(-2.0, 2.0), x_spread=0.3)
        xs[d], ys[d] = x, y
    codes = cluster_codes(clusters, clusters.size)
    _, _, p_cluster, _ = trend_scores(xs, ys, codes)
    _, _, p_items, _ = trend_scores(xs, ys, np.arange(clusters.size))
    fpr_cluster = float(np.mean(p_cluster < 0.05))
    fpr_items = float(np.mean(p_items < 0.05))
    print(f"false-positive rate: cluster-robust {fpr_cluster:.3f}, items as units {fpr_items:.3f}")
    assert 0.02 <= fpr_cluster <= 0.07
    assert fpr_items > 0.25


def test_monotone_crossing_of_a_step_is_near_the_step() -> None:
    x, y, _ = simulate_step_law(30, 40, -1.8, 0.85, 0.2, 0.0, np.random.default_rng(2))
    assert fit_isotonic(x, y).crossing(0.5) == pytest.approx(-1.8, abs=0.1)


def _planted_block_table(counts: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Items at x = 0, 1, 2, ...: ``(items, text-following)`` per x."""
    x = np.concatenate([np.full(m, float(i)) for i, (m, _) in enumerate(counts)])
    y = np.concatenate([np.r_[np.ones(k), np.zeros(m - k)] for m, k in counts]).astype(bool)
    return x, y


def test_a_block_at_one_half_crosses_at_its_centre_without_float_equality() -> None:
    # The documented rule: a block of the isotonic fit at 0.5 crosses at its centre
    # (weighted mean x). Exactly 0.5 (two pooled points), and 0.49999999999999994
    # (thirteen pooled points whose running PAVA means round below 0.5).
    x, y = _planted_block_table([(5, 5), (4, 1), (4, 3), (6, 2)])
    fit = fit_isotonic(x, y)
    assert fit.y[1] == 0.5
    assert fit.crossing(0.5) == pytest.approx(1.5)  # not 2.25 (between the neighbours)
    pooled = [(1, 1), (8, 7), (10, 10), (1, 1), (8, 4), (11, 4), (1, 1), (2, 0), (10, 9),
              (7, 2), (8, 1), (10, 0), (11, 4)][::-1]
    x, y = _planted_block_table([(5, 5)] + pooled + [(5, 0)])
    fit = fit_isotonic(x, y)
    assert fit.y[1] == 0.49999999999999994  # scipy's rounding, not 0.5
    block = (x >= 1) & (x <= 13)
    assert fit.crossing(0.5) == pytest.approx(float(x[block].mean()), abs=1e-12)


def test_monotone_crossing_is_consistent_on_a_step_law() -> None:
    # Step 0.9 -> 0.35 at x = 0.5: the crossing converges to the step as n grows (the
    # centred fit's crossing went to about 0.66).
    rng = np.random.default_rng(3)
    for n in (500, 5000):
        est = []
        for _ in range(40):
            x = rng.uniform(-2, 2, n)
            y = rng.random(n) < np.where(x < 0.5, 0.9, 0.35)
            est.append(fit_isotonic(x, y).crossing(0.5))
        assert abs(np.median(est) - 0.5) < (0.05 if n == 500 else 0.02), (n, np.median(est))


def test_trend_test_says_the_smallest_attainable_p_without_rounding_it_down() -> None:
    # 3 clusters with a clean trend: all 8 sign flips give p = 2/8 = 0.25, the smallest
    # p attainable; it used to be printed as "p<=0.2".
    rng = np.random.default_rng(2)
    x, y, c = simulate_clustered_law(3, 60, 0.0, -6.0, 0.0, rng)
    test = trend_test(x, y, clusters=c)
    assert test.p_value == pytest.approx(0.25)
    assert test.describe().endswith(
        "p=0.25 by all sign flips over 3 clusters: the smallest p they can give")
