"""modprobe.stats.monotone: the isotonic fit, its crossing and the trend test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modprobe.analysis.simulate import simulate_clustered_law, simulate_step_law
from modprobe.stats.monotone import fit_isotonic, trend_scores, trend_test
from modprobe.stats.resample import cluster_codes


def test_isotonic_fit_and_centred_crossing_by_hand() -> None:
    fit = fit_isotonic([0.0, 1.0, 2.0, 3.0], [True, False, True, False])
    np.testing.assert_allclose(fit.y, [1.0, 0.5, 0.5, 0.0])
    cx, cy = fit.centred()
    np.testing.assert_allclose(cx, [0.0, 1.5, 3.0])
    np.testing.assert_allclose(cy, [1.0, 0.5, 0.0])
    assert fit.crossing(0.5) == 1.5  # the block exactly at 0.5: its centre
    assert fit.crossing(0.75) == pytest.approx(0.75)  # halfway from 1.0 at 0 to 0.5 at 1.5
    assert fit_isotonic([0.0, 1.0], [True, True]).crossing(0.5) == math.inf
    assert fit_isotonic([0.0, 1.0], [False, False]).crossing(0.5) == -math.inf
    up = fit_isotonic([0.0, 1.0, 2.0], [False, False, True], increasing=True)
    assert up.crossing(0.5) == pytest.approx(1.25)  # centres (0.5, 0) and (2, 1)


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
