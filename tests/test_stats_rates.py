"""Rates and paired differences of rates with few clusters: the method follows the
declared kind, and rare events keep their level with 8 clusters."""

import numpy as np
import pytest

from modprobe.stats import mean_interval
from modprobe.stats.cluster_mean import bell_mccaffrey_df, cr2_variance
from modprobe.stats.cluster_rate import _korn_graubard


def _beta(rng: np.random.Generator, mean: float, icc: float, size: int) -> np.ndarray:
    """Cluster rates with the given mean and intra-cluster correlation."""
    k = (1 - icc) / icc
    return rng.beta(mean * k, (1 - mean) * k, size)


def _dataset(rng: np.random.Generator, setting: tuple, n_clusters: int = 8):
    """``(truth, values, codes)``: clusters of 10-39 items; a rate (each item's 0/1
    outcome averaged over ``draws`` draws) or a paired difference of two rates."""
    kind, up, down, icc, draws = setting
    sizes = rng.integers(10, 40, n_clusters)
    codes = np.repeat(np.arange(n_clusters), sizes)
    u = rng.random((codes.size, draws))
    p_up = _beta(rng, up, icc, n_clusters)[codes, None]
    if kind == "rate":
        return up, (u < p_up).mean(axis=1), codes
    p_down = _beta(rng, down, icc, n_clusters)[codes, None]
    values = (u < p_up).astype(float) - ((u >= p_up) & (u < p_up + p_down))
    return up - down, values.mean(axis=1), codes


#: (kind, rate or P(+1), P(-1), intra-cluster correlation, draws per item)
RARE = [("rate", 0.05, 0.0, 0.1, 1), ("rate", 0.98, 0.0, 0.1, 5),
        ("paired", 0.04, 0.01, 0.1, 1), ("paired", 0.02, 0.02, 0.1, 1),
        ("paired", 0.05, 0.01, 0.1, 5)]
#: Strongly clustered rare events (intra-cluster correlation 0.2): the rate's clusters
#: are Beta(0.2, 3.8), most of them near 0, so one or two clusters hold every event.
CONCENTRATED = [("rate", 0.05, 0.0, 0.2, 1), ("paired", 0.05, 0.01, 0.2, 5)]


@pytest.mark.parametrize("n_clusters", [8, 12])
@pytest.mark.parametrize("setting", CONCENTRATED, ids=lambda s: f"{s[0]}-{s[1]}-icc{s[3]}")
def test_rare_events_held_by_one_or_two_clusters_keep_their_level(
        setting: tuple, n_clusters: int) -> None:
    # Without the cap on the effective size at the items of the clusters that saw an
    # event (plus one per other cluster) these covered 0.89-0.91 (rate) and 0.90-0.92
    # (paired): a single event in a single cluster gave a design effect near 1.
    rng = np.random.default_rng(23)
    reps, covered = 1000, 0
    for _ in range(reps):
        truth, values, codes = _dataset(rng, setting, n_clusters)
        interval = mean_interval(values, codes, kind=setting[0])
        covered += interval.low <= truth <= interval.high
    assert covered / reps >= 0.93, covered / reps


def _uncapped_width(values: np.ndarray, codes: np.ndarray) -> float:
    """Width of the plain Korn-Graubard interval (effective size capped at n only)."""
    sizes = np.bincount(codes).astype(float)
    variance = float(cr2_variance(np.bincount(codes, weights=values), sizes))
    low, high, _ = _korn_graubard(float(values.mean()), variance, values.size,
                                  bell_mccaffrey_df(sizes), 0.95)
    return high - low


def test_the_cap_leaves_common_rates_and_independent_items_alone() -> None:
    rng = np.random.default_rng(5)
    ratios = []
    for _ in range(300):  # rate 0.1, correlation 0.1, 8 clusters: a cluster with no event
        _, values, codes = _dataset(rng, ("rate", 0.1, 0.0, 0.1, 1))  # is not rare
        interval = mean_interval(values, codes, kind="rate")
        ratios.append((interval.high - interval.low) / _uncapped_width(values, codes))
    assert min(ratios) >= 1.0 - 1e-12 and np.median(ratios) <= 1.02, np.median(ratios)
    # independent items averaged over 5 draws: each item is a cluster of one, so the
    # cap is the item count and the interval is Korn and Graubard's
    values = (rng.random((200, 5)) < rng.beta(0.5, 9.5, 200)[:, None]).mean(axis=1)
    interval = mean_interval(values, kind="rate")
    assert interval.high - interval.low == pytest.approx(
        _uncapped_width(values, np.arange(200)), rel=1e-12)


@pytest.mark.parametrize("setting", RARE, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-x{s[4]}")
def test_rare_rates_and_paired_differences_keep_their_level_with_eight_clusters(
        setting: tuple) -> None:
    # Flip rates near 0 or 1 and paired differences of two rare flips: most clusters
    # see no event. The cluster-adjusted Wilson interval (rates) and the bootstrap-t
    # (differences) covered 0.87-0.93 here; 1,000 datasets, a coverage's standard
    # error is about 0.007.
    rng = np.random.default_rng(11)
    reps, covered = 1000, 0
    for r in range(reps):
        truth, values, codes = _dataset(rng, setting)
        interval = mean_interval(values, codes, kind=setting[0], seed=r)
        covered += interval.low <= truth <= interval.high
    assert covered / reps >= 0.93, covered / reps


def test_the_declared_kind_not_the_values_picks_the_method() -> None:
    codes = np.repeat(np.arange(8), 10)
    no_minus_one = np.zeros(80)
    no_minus_one[::9] = 1.0  # a paired difference whose every value happens to be 0/1
    paired = mean_interval(no_minus_one, codes, kind="paired")
    as_rate = mean_interval(no_minus_one, codes, kind="rate")
    # the paired interval allows for -1 values the sample happened not to show
    assert paired.method == "paired-mover" and paired.low < as_rate.low < paired.estimate
    averaged = np.linspace(0, 1, 80)  # a rate averaged over draws is still a rate
    assert mean_interval(averaged, codes, kind="rate").method == "korn-graubard"
    assert mean_interval(averaged, codes, kind="continuous").method == "cluster-bootstrap-t"
    assert mean_interval(no_minus_one, codes).method == "korn-graubard"  # undeclared: 0/1
    with pytest.raises(ValueError, match="kind='rate' needs values in"):
        mean_interval(averaged * 2, codes, kind="rate")
    with pytest.raises(ValueError, match="use one of"):
        mean_interval(averaged, codes, kind="proportion")


def test_rates_stay_inside_zero_one_and_never_collapse_without_events() -> None:
    codes = np.repeat(np.arange(8), 10)
    none = mean_interval(np.zeros(80), codes, kind="rate")
    assert none.low == 0.0 and 0.0 < none.high < 0.2
    every = mean_interval(np.ones(80), codes, kind="rate")
    assert every.high == 1.0 and 0.8 < every.low < 1.0
    no_change = mean_interval(np.zeros(80), codes, kind="paired")
    assert no_change.low < 0 < no_change.high and no_change.estimate == 0.0


def test_bell_mccaffrey_degrees_of_freedom_match_the_matrix_form() -> None:
    rng = np.random.default_rng(3)
    for sizes in (np.full(8, 20.0), rng.integers(2, 80, 8).astype(float), np.ones(50)):
        n = sizes.sum()
        weight = 1.0 / (1.0 - sizes / n)
        gram = np.sqrt(np.outer(weight, weight)) * (np.diag(sizes) - np.outer(sizes, sizes) / n)
        expected = np.trace(gram) ** 2 / np.sum(gram * gram)
        assert bell_mccaffrey_df(sizes) == pytest.approx(expected, rel=1e-10)
    assert bell_mccaffrey_df(np.full(8, 20.0)) == pytest.approx(7.0)


def test_a_mean_over_three_clusters_says_unbounded_not_a_huge_number() -> None:
    # With 3 clusters 1 bootstrap replicate in 9 draws one cluster three times and has
    # no spread; the bootstrap-t quantiles then fall among those replicates, and a
    # bound must read inf (printed as such, null in JSON), not 1e299 (a number a
    # figure draws and a reader copies).
    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(3), [48, 48, 4])
    values = rng.poisson(0.3, codes.size).astype(float)
    interval = mean_interval(values, codes, kind="continuous", n_bootstrap=1000, seed=0)
    assert interval.method == "cluster-bootstrap-t"
    assert np.isinf(interval.low) and np.isinf(interval.high)
    assert interval.low < interval.estimate < interval.high
    # Rounding leaves such a replicate an error of ~1e-17 rather than 0 (t ~ 1e15):
    # it has no spread all the same (a bound of 3e12 before).
    values = np.random.default_rng(32).random(codes.size) * 1.7
    interval = mean_interval(values, codes, kind="continuous", n_bootstrap=1000, seed=0)
    assert np.isinf(interval.low) and np.isinf(interval.high)
    # with 12 clusters no such replicate reaches the 2.5% quantiles: bounded
    codes = np.repeat(np.arange(12), 25)
    values = rng.poisson(0.3, codes.size).astype(float)
    interval = mean_interval(values, codes, kind="continuous", n_bootstrap=1000, seed=0)
    assert np.isfinite(interval.low) and np.isfinite(interval.high)
