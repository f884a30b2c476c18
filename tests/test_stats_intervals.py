"""modprobe.stats.intervals: the one interval helper."""

import json

import numpy as np
import pytest
from scipy import stats

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
        ci = mean_interval(values, clusters, n_bootstrap=500, seed=int(rng.integers(1e9))).ci
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
        interval = mean_interval(data, n_bootstrap=1000, seed=seed)
        assert np.allclose(w.sum(axis=1), data.size)
        bounds.append(interval.low)
        errors.append(interval.mc_error)
    spread = float(np.std(bounds))
    assert 0.6 * spread < float(np.median(errors)) < 1.6 * spread


def test_cluster_intervals_keep_their_level_with_eight_clusters() -> None:
    # Beta-binomial clusters (8 of 10-39 items, intra-cluster correlation 0.1, mean
    # 0.3): the percentile cluster bootstrap covered about 0.87 at nominal 0.95; the
    # Korn-Graubard interval of a rate keeps about 0.95 (600 tables: +-0.01).
    rng = np.random.default_rng(11)
    p, rho, covered, reps = 0.3, 0.1, 0, 600
    a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
    for r in range(reps):
        sizes = rng.integers(10, 40, 8)
        values = np.concatenate([rng.random(s) < q for s, q in zip(sizes, rng.beta(a, b, 8))])
        interval = mean_interval(values, np.repeat(np.arange(8), sizes), n_bootstrap=500,
                                 seed=r)
        covered += interval.low <= p <= interval.high
    assert covered / reps >= 0.915, covered / reps  # 0.93 within its error
    assert interval.method == "korn-graubard" and 0 <= interval.low <= interval.high <= 1


def test_expanded_percentile_level() -> None:
    from modprobe.stats.intervals import expanded_level

    assert expanded_level(0.95, 8) == pytest.approx(0.9885, abs=1e-4)
    assert expanded_level(0.95, 12) == pytest.approx(0.9785, abs=1e-4)
    assert expanded_level(0.95, None) == 0.95
    assert 0.95 < expanded_level(0.95, 500) < 0.951
    # bootstrap_interval takes its percentiles at that level for the clusters it is given
    from modprobe.stats import bootstrap_interval

    boot = np.random.default_rng(0).normal(size=4000)
    wide = bootstrap_interval(boot, 0.0, n_clusters=8)
    level = expanded_level(0.95, 8)
    assert wide.low == pytest.approx(float(np.quantile(boot, (1 - level) / 2)), abs=1e-9)


def _skewed_clusters(kind: str, n_clusters: int,
                     rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    """Strongly skewed clusters of 10-39 items (the "strong" rows of the coverage
    table): paired differences in {-1, 0, +1} with Beta P(+1) (mean 0.1) and P(-1)
    (mean 0.02) per cluster, intra-cluster correlation 0.2 (truth 0.08), or Poisson
    counts with an exponential rate of mean 1.5 per cluster (truth 1.5)."""
    sizes = rng.integers(10, 40, n_clusters)
    codes = np.repeat(np.arange(n_clusters), sizes)
    if kind == "count":
        return 1.5, rng.poisson(rng.exponential(1.5, n_clusters)[codes]).astype(float), codes
    up = rng.beta(0.4, 3.6, n_clusters)[codes]
    down = rng.beta(0.08, 3.92, n_clusters)[codes]
    u = rng.random(codes.size)
    return 0.08, (u < up).astype(float) - ((u >= up) & (u < up + down)).astype(float), codes


@pytest.mark.parametrize("kind", ["paired difference", "count"])
def test_means_of_other_values_keep_their_level_with_eight_skewed_clusters(kind: str) -> None:
    # The expanded percentile cluster bootstrap covered about 0.89-0.90 here at nominal
    # 0.95; the studentised cluster bootstrap keeps 0.93. 1,000 datasets: a coverage's
    # standard error is about 0.008, so 0.93 within two of them is 0.914.
    from modprobe.stats.cluster_mean import bell_mccaffrey_df, cr2_variance

    rng = np.random.default_rng(7)
    reps, covered, ratio = 1000, 0, []
    for r in range(reps):
        truth, values, codes = _skewed_clusters(kind, 8, rng)
        declared = "paired" if kind == "paired difference" else "continuous"
        interval = mean_interval(values, codes, kind=declared, n_bootstrap=1000, seed=r)
        covered += interval.low <= truth <= interval.high
        if declared == "paired":  # the MOVER interval of two rates: no Student floor
            continue
        sizes = np.bincount(codes).astype(float)
        se = np.sqrt(cr2_variance(np.bincount(codes, weights=values), sizes))
        student = 2 * se * stats.t.ppf(0.975, bell_mccaffrey_df(sizes))
        ratio.append((interval.high - interval.low) / student)
    assert covered / reps >= 0.914, covered / reps
    # never narrower than the CR2 Student interval, and not absurdly wider
    if ratio:
        assert min(ratio) >= 1 - 1e-9 and float(np.median(ratio)) < 1.4, np.median(ratio)


def test_cr2_error_of_equal_clusters_is_the_small_sample_corrected_one() -> None:
    from modprobe.stats.cluster_mean import bell_mccaffrey_df, cr2_variance

    rng = np.random.default_rng(2)
    totals, sizes = rng.normal(size=6) * 10 + 50, np.full(6, 20.0)
    mean = totals.sum() / sizes.sum()
    cr0 = np.sum((totals - mean * sizes) ** 2) / sizes.sum() ** 2
    assert float(cr2_variance(totals, sizes)) == pytest.approx(6 / 5 * cr0)
    assert bell_mccaffrey_df(sizes) == pytest.approx(5.0)
    assert bell_mccaffrey_df(np.array([2.0, 3.0, 4.0, 60.0, 70.0, 80.0])) < 5.0
    # a cluster drawn twice counts as two clusters
    doubled = cr2_variance(np.r_[totals, totals[:1]], np.r_[sizes, sizes[:1]])
    counts = np.r_[2.0, np.ones(5)]
    assert float(cr2_variance(totals, sizes, counts)) == pytest.approx(float(doubled))
