"""modprobe.stats.intervals: the one interval helper."""

import json

import numpy as np
import pytest

from modprobe.stats import Interval, mean_interval, wilson_interval


def test_mean_interval_of_bools_is_wilson() -> None:
    values = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=bool)
    interval = mean_interval(values)
    assert interval.method == "wilson"
    assert interval.estimate == 0.7
    assert interval.ci == wilson_interval(7, 10)


def test_one_cluster_is_not_identified_and_json_has_no_nan() -> None:
    interval = mean_interval([1, 0, 1], clusters=["a", "a", "a"])
    assert not interval.identified
    assert "cluster" in interval.note
    text = json.dumps(interval.to_dict(), allow_nan=False)
    assert json.loads(text)["low"] is None


def test_cluster_bootstrap_covers_a_planted_mean_on_clustered_data() -> None:
    # 20 clusters of 10 items sharing a cluster effect: the item-level Wilson interval is
    # too narrow, the cluster bootstrap covers the truth near its nominal rate.
    rng = np.random.default_rng(0)
    covered_cluster = covered_items = 0
    n_datasets = 200
    for _ in range(n_datasets):
        effect = rng.normal(0.0, 1.5, size=20)
        p = 1 / (1 + np.exp(-np.repeat(effect, 10)))
        values = rng.random(p.size) < p
        truth = 0.5  # symmetric effect around 0
        clusters = np.repeat(np.arange(20), 10)
        ci = mean_interval(values, clusters, n_resamples=500, seed=int(rng.integers(1e9))).ci
        covered_cluster += ci[0] <= truth <= ci[1]
        lo, hi = mean_interval(values).ci
        covered_items += lo <= truth <= hi
    assert covered_cluster / n_datasets >= 0.88
    assert covered_items / n_datasets < 0.8


def test_empty_values_are_not_identified() -> None:
    interval = mean_interval([np.nan, np.nan])
    assert isinstance(interval, Interval) and not interval.identified
    assert interval.format() == "not identified (no items)"


def test_infinite_replicates_give_an_open_flagged_bound_never_nan() -> None:
    from modprobe.stats import bootstrap_interval, percentile_interval

    values = np.r_[np.linspace(-1.0, -0.5, 900), np.full(100, np.inf)]
    low, high = percentile_interval(values, 0.95)
    assert low < -0.9 and high == np.inf
    interval = bootstrap_interval(values, -0.7, bounds=(-2.0, 2.0))
    assert any(flag.startswith("open") for flag in interval.flags)
    assert "open" in interval.format()


def test_bound_outside_the_observed_range_is_flagged() -> None:
    from modprobe.stats import bootstrap_interval

    values = np.random.default_rng(0).normal(-1.9, 0.1, 2000)
    interval = bootstrap_interval(values, -1.9, bounds=(-1.95, 1.9))
    assert interval.flags == ("ci leaves the observed range [-1.950, 1.900]",)


def test_monte_carlo_error_predicts_the_spread_of_bounds_between_seeds() -> None:
    # The stated Monte Carlo error of a percentile bound is its standard deviation over
    # seeds: check against 200 independent bootstrap runs of a mean.
    from modprobe.stats import resample_weights

    rng = np.random.default_rng(1)
    data = rng.normal(size=300)
    bounds, errors = [], []
    for seed in range(200):
        w = resample_weights(data.size, 1000, np.random.default_rng(seed))
        interval = mean_interval(data, n_resamples=1000, seed=seed)
        assert np.allclose(w.sum(axis=1), data.size)
        bounds.append(interval.low)
        errors.append(interval.mc_error)
    spread = float(np.std(bounds))
    assert 0.6 * spread < float(np.median(errors)) < 1.6 * spread


def test_cluster_intervals_keep_their_level_with_eight_clusters() -> None:
    # Beta-binomial clusters (8 of 10-39 items, intra-cluster correlation 0.1, mean
    # 0.3): the percentile cluster bootstrap covered about 0.87 at nominal 0.95; the
    # cluster-adjusted Wilson interval keeps about 0.93-0.95 (600 tables: +-0.01).
    rng = np.random.default_rng(11)
    p, rho, covered, reps = 0.3, 0.1, 0, 600
    a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
    for r in range(reps):
        sizes = rng.integers(10, 40, 8)
        values = np.concatenate([rng.random(s) < q for s, q in zip(sizes, rng.beta(a, b, 8))])
        interval = mean_interval(values, np.repeat(np.arange(8), sizes), n_resamples=500,
                                 seed=r)
        covered += interval.low <= p <= interval.high
    assert covered / reps >= 0.915, covered / reps  # 0.93 within its error
    assert interval.method == "cluster-wilson" and 0 <= interval.low <= interval.high <= 1


def test_expanded_percentile_level() -> None:
    from modprobe.stats.intervals import expanded_level

    assert expanded_level(0.95, 8) == pytest.approx(0.9885, abs=1e-4)
    assert expanded_level(0.95, 12) == pytest.approx(0.9785, abs=1e-4)
    assert expanded_level(0.95, None) == 0.95
    assert 0.95 < expanded_level(0.95, 500) < 0.951
    # a clustered mean of non-0/1 values takes its percentiles at that level
    rng = np.random.default_rng(0)
    values = rng.normal(size=80)
    clusters = np.repeat(np.arange(8), 10)
    wide = mean_interval(values, clusters, seed=1)
    assert wide.method == "cluster-bootstrap"
    from modprobe.stats.resample import resample_weights
    w = resample_weights(80, 2000, np.random.default_rng(1), clusters)
    boot = (w @ values) / w.sum(axis=1)
    assert wide.low == pytest.approx(float(np.quantile(boot, (1 - 0.98852) / 2)), abs=0.02)
