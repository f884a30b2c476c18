"""The law, its fits, the balance point and its calibration (docs/science.md section 1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from modprobe.analysis.following.calibration import coverage_study
from modprobe.analysis.following.entropy_split import split_by_entropy
from modprobe.analysis.following.law import (
    balance_point,
    binned_following_rate,
    fit_isotonic,
    fit_law,
    fit_logistic,
    fit_logistic_batch,
)
from modprobe.analysis.following.simulate import simulate_following_table, simulate_law
from modprobe.analysis.following.uncertainty import relative_uncertainty


def _planted(n: int, x0: float, slope: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return simulate_law(n, x0, slope, np.random.default_rng(seed))


def test_logistic_fit_solves_the_score_equations_and_matches_a_generic_optimiser() -> None:
    x, y = _planted(800, 0.2, -2.5, seed=0)
    fit = fit_logistic(x, y)
    p = fit.predict(x)
    assert fit.converged
    assert abs(np.sum(y - p)) < 1e-6 and abs(np.sum((y - p) * x)) < 1e-6

    def nll(c: np.ndarray) -> float:
        eta = c[0] + c[1] * x
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    ref = minimize(nll, np.zeros(2), method="BFGS").x
    assert fit.intercept == pytest.approx(ref[0], abs=1e-4)
    assert fit.slope == pytest.approx(ref[1], abs=1e-4)


def test_batched_fit_equals_separate_fits() -> None:
    rng = np.random.default_rng(1)
    xs, ys = zip(*(simulate_law(300, x0, -3.0, rng) for x0 in (-0.5, 0.0, 0.7)))
    coef, converged, _ = fit_logistic_batch(np.stack(xs), np.stack(ys).astype(float))
    assert converged.all()
    for row, x, y in zip(coef, xs, ys):
        single = fit_logistic(x, y)
        assert row == pytest.approx([single.intercept, single.slope], abs=1e-6)


def test_separated_data_do_not_converge_but_cross_between_the_classes() -> None:
    x = np.array([-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5])
    y = x < 0
    fit = fit_logistic(x, y)
    assert not fit.converged
    assert fit.slope < -5
    assert -0.5 < -fit.intercept / fit.slope < 0.5


def test_planted_balance_point_is_recovered_at_n_2000() -> None:
    x, y = _planted(2000, -0.3, -4.0, seed=2)
    law = fit_law(x, y, n_bootstrap=500, seed=0, isotonic_band=False)
    bp = law.balance_point
    assert bp.crosses and bp.direction is None
    assert abs(bp.value - (-0.3)) <= 0.05
    assert bp.ci_low < -0.3 < bp.ci_high
    assert bp.ci_high - bp.ci_low < 0.2
    assert law.logistic.slope == pytest.approx(-4.0, abs=0.6)
    assert bp.summary() == f"balance_point={bp.value:.3f} ci=[{bp.ci_low:.3f}, {bp.ci_high:.3f}]"


@pytest.mark.parametrize("x0", [-1.0, 0.0, 0.6])
def test_planted_balance_points_are_recovered_across_the_range(x0: float) -> None:
    x, y = _planted(2000, x0, -4.0, seed=3)
    assert abs(balance_point(x, y, n_bootstrap=200).value - x0) <= 0.05


def test_no_crossing_reports_direction_instead_of_a_number() -> None:
    x, y = _planted(1000, 3.0, -2.0, seed=4)  # crosses far right of the data
    bp = balance_point(x, y, n_bootstrap=200)
    assert not bp.crosses and np.isnan(bp.value)
    assert bp.direction == "text"
    assert bp.extrapolated > x.max()
    assert bp.summary().startswith("balance_point=none (fitted P(text) stays above 0.5")
    x, y = _planted(1000, -3.0, -2.0, seed=5)
    assert balance_point(x, y, n_bootstrap=200).direction == "vision"


def test_constant_outcomes_give_a_flat_non_crossing_fit() -> None:
    x = np.linspace(-1, 1, 30)
    bp = balance_point(x, np.ones(30, bool), n_bootstrap=50)
    assert not bp.crosses and bp.direction == "text"
    assert balance_point(x, np.zeros(30, bool), n_bootstrap=50).direction == "vision"


def test_law_bands_contain_the_fit_and_monotonicity_detects_decrease() -> None:
    x, y = _planted(1500, 0.0, -3.0, seed=6)
    law = fit_law(x, y, n_bootstrap=300)
    low, high = law.logistic_band
    assert np.all(low <= law.logistic_curve + 1e-9) and np.all(law.logistic_curve <= high + 1e-9)
    assert law.isotonic_band is not None
    assert np.all(np.diff(law.isotonic_curve) <= 1e-12)
    m = law.monotonicity
    assert m.decreasing and m.slope_ci[1] < 0 and m.p_value <= 1 / 5000  # the floor of 4,999 flips
    assert m.summary().startswith("monotonicity: decreasing (score test")
    assert m.spearman_rho < -0.9 and m.n_bins == 10
    assert law.n == 1500 and law.n_text == int(y.sum())


def test_monotonicity_is_not_claimed_for_increasing_or_flat_data() -> None:
    x, y = _planted(1500, 0.0, 3.0, seed=7)
    law = fit_law(x, y, n_bootstrap=200, isotonic_band=False)
    up = law.monotonicity
    # the non-increasing monotone fit has the wrong shape for an increasing trend
    assert law.recommendation == "logistic" and "increasing" in law.recommendation_reason
    assert not up.decreasing and up.increasing and up.spearman_rho > 0.9
    assert up.summary().startswith("monotonicity: increasing")
    rng = np.random.default_rng(8)
    flat = fit_law(
        rng.uniform(-2, 2, 1500), rng.random(1500) < 0.5, n_bootstrap=200, isotonic_band=False
    ).monotonicity
    assert flat.direction is None and flat.slope_ci[0] < 0 < flat.slope_ci[1]
    assert flat.summary().startswith("monotonicity: not established")


def test_isotonic_fit_by_hand() -> None:
    fit = fit_isotonic([0.0, 1.0, 2.0, 3.0], [True, False, True, False])
    np.testing.assert_allclose(fit.y, [1.0, 0.5, 0.5, 0.0])
    # Tied x values are pooled; weights act like repeated items.
    pooled = fit_isotonic([0.0, 0.0, 1.0], [True, False, False], weights=[3, 1, 2])
    np.testing.assert_allclose(pooled.x, [0.0, 1.0])
    np.testing.assert_allclose(pooled.y, [0.75, 0.0])


def test_binned_rates_by_hand() -> None:
    x = np.array([-1.0, -0.9, -0.8, 0.1, 0.2, 0.3])
    y = np.array([1, 1, 0, 0, 0, 1], bool)
    bins = binned_following_rate(x, y, bins=[-2.0, 0.0, 2.0])
    assert bins["n"].tolist() == [3, 3]
    np.testing.assert_allclose(bins["rate"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(bins["x_mean"], [-0.9, 0.2])
    assert (bins["ci_low"] < bins["rate"]).all() and (bins["rate"] < bins["ci_high"]).all()


def test_quantile_bins_merge_tied_edges() -> None:
    x = np.r_[np.full(80, 2.0), np.linspace(-1, 1, 20)]  # saturated pile at +2
    bins = binned_following_rate(x, np.zeros(100, bool), bins=10)
    assert len(bins) < 10 and bins["n"].sum() == 100


def test_quantile_bins_fall_back_to_equal_width_under_a_point_mass() -> None:
    x = np.r_[np.zeros(90), np.linspace(-1, 1, 10)]  # floored saturated items all at 0
    bins = binned_following_rate(x, np.zeros(100, bool), bins=10)
    np.testing.assert_allclose(bins["x_low"], np.linspace(-1, 0.8, 10), atol=1e-12)
    assert bins["n"].tolist() == [1, 1, 1, 1, 1, 91, 1, 1, 1, 1]


def test_too_few_items_raise() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        fit_law([0.1, np.nan, 0.2], [True, False, True])


def test_entropy_split_moves_the_balance_point_toward_zero_in_the_high_half() -> None:
    table = simulate_following_table(
        6000, balance_point=-0.8, seed=9, share_other=0.0, entropy_shrink=1.5
    )
    x = relative_uncertainty(table["h_text"], table["h_vision"]).values
    followed = (table["y_multi"] == table["y_text"]).to_numpy()
    split = split_by_entropy(
        table["h_text"], table["h_vision"], x, followed, n_bootstrap=200, isotonic_band=False
    )
    total = table["h_text"] + table["h_vision"]
    assert split.median_total == pytest.approx(float(np.median(total)))
    assert split.low.n + split.high.n == 6000
    lo, hi = split.low.balance_point, split.high.balance_point
    assert lo.crosses and hi.crosses
    assert lo.value < hi.value < 0
    assert hi.ci_low > lo.ci_high  # the shift is larger than the intervals
    assert split.low.monotonicity.decreasing and split.high.monotonicity.decreasing


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    x, y = _planted(400, 0.0, -3.0, seed=10)
    a = balance_point(x, y, n_bootstrap=100, seed=5)
    b = balance_point(x, y, n_bootstrap=100, seed=5)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


def test_fitted_curve_is_the_logistic_of_the_coefficients() -> None:
    x, y = _planted(300, 0.0, -3.0, seed=11)
    law = fit_law(x, y, n_bootstrap=20, isotonic_band=False, grid_size=11)
    expected = expit(law.logistic.intercept + law.logistic.slope * law.grid)
    np.testing.assert_allclose(law.logistic_curve, expected)
    assert law.grid[0] == x.min() and law.grid[-1] == x.max()


def test_integer_weights_equal_repeated_items() -> None:
    x, y = _planted(60, 0.1, -2.0, seed=3)
    counts = np.random.default_rng(0).integers(0, 4, size=x.size)
    weighted, _, _ = fit_logistic_batch(x.reshape(1, -1), y.reshape(1, -1).astype(float),
                                        weights=counts.reshape(1, -1))
    repeated = fit_logistic(np.repeat(x, counts), np.repeat(y, counts))
    assert weighted[0] == pytest.approx([repeated.intercept, repeated.slope], abs=1e-7)


def test_cluster_bootstrap_covers_a_planted_balance_point_where_items_do_not() -> None:
    # 12 clusters of 40 items sharing a logit shift (sd 1.5): like 12 generator groups.
    common = {"n_datasets": 150, "n_items": 480, "n_bootstrap": 300,
              "true_balance_point": 0.3, "slope": -1.5, "n_clusters": 12, "cluster_sd": 1.5,
              "seed": 1}
    by_cluster = coverage_study(unit="cluster", **common)
    by_item = coverage_study(unit="item", **common)
    # The percentile interval over 12 clusters undercovers a little (0.90 here), but not
    # like the item bootstrap, whose intervals are a third as wide.
    assert by_cluster.coverage >= 0.85, by_cluster.summary()
    assert by_item.coverage <= 0.7, by_item.summary()
    assert by_cluster.mean_width > 2 * by_item.mean_width


def test_cluster_labels_are_checked() -> None:
    x, y = _planted(40, 0.0, -2.0, seed=0)
    with pytest.raises(ValueError, match="40 items"):
        balance_point(x, y, clusters=np.arange(39))
    labels = np.array(["a", "b"] * 20, dtype=object)
    labels[3] = None
    with pytest.raises(ValueError, match="no cluster label"):
        balance_point(x, y, clusters=labels)
    with pytest.raises(ValueError, match="at least 2 clusters"):
        balance_point(x, y, clusters=["same"] * 40)


def test_law_with_clusters_widens_bands_on_clustered_data() -> None:
    from modprobe.analysis.following.simulate import simulate_clustered_law

    x, y, clusters = simulate_clustered_law(10, 50, 0.0, -2.0, 1.5, np.random.default_rng(4))
    by_item = fit_law(x, y, n_bootstrap=300)
    by_cluster = fit_law(x, y, n_bootstrap=300, clusters=[f"g{c}" for c in clusters])
    assert by_cluster.logistic.slope == by_item.logistic.slope  # same point estimate
    width = {name: np.mean(law.logistic_band[1] - law.logistic_band[0])
             for name, law in (("item", by_item), ("cluster", by_cluster))}
    assert width["cluster"] > 1.5 * width["item"]
    assert by_cluster.isotonic_band is not None


@pytest.mark.slow
def test_planted_logistic_law_estimate_and_coverage_over_200_datasets() -> None:
    # Logistic truth, 200 datasets x 500 items, 400 bootstrap fits each (a couple of
    # minutes on one core): the mean estimate is within 0.05 of the truth and the
    # interval covers it at its nominal rate.
    result = coverage_study(n_datasets=200, n_items=500, n_bootstrap=400, seed=0)
    print(result.summary())
    assert 0.92 <= result.coverage <= 0.98, result.summary()
    assert abs(result.bias) < 0.05
    assert result.n_not_crossing == 0


@pytest.mark.slow
def test_step_shaped_truth_is_flagged_and_the_monotone_interval_covers_it() -> None:
    # A monotone law that is not logistic: P(text) = 0.8 left of -1.8, 0.25 right of it,
    # x piled up near +-2 as on the organism, 30 clusters of 20 items with logit shifts.
    # The goodness-of-fit test flags the logistic fit, the summary recommends the
    # monotone balance point, and its cluster-bootstrap interval covers -1.8.
    from modprobe.analysis.following.simulate import simulate_step_law

    rng = np.random.default_rng(0)
    n = 100
    flagged = recommended = covered = covered_logistic = 0
    estimates = []
    for d in range(n):
        x, y, c = simulate_step_law(30, 20, -1.8, 0.8, 0.25, 0.5, rng)
        law = fit_law(x, y, n_bootstrap=300, clusters=c, isotonic_band=False, seed=d)
        mono, logistic = law.balance_point_monotone, law.balance_point
        flagged += law.goodness_of_fit.rejected
        recommended += law.recommendation == "monotone"
        covered += mono.crosses and mono.ci_low <= -1.8 <= mono.ci_high
        covered_logistic += logistic.crosses and logistic.ci_low <= -1.8 <= logistic.ci_high
        estimates.append(mono.value)
    print(f"step truth over {n} datasets: misfit flagged {flagged / n:.2f}, monotone "
          f"recommended {recommended / n:.2f}, monotone coverage {covered / n:.2f}, logistic "
          f"coverage {covered_logistic / n:.2f}, mean monotone estimate {np.mean(estimates):.3f}")
    assert flagged / n >= 0.9 and recommended / n >= 0.9
    assert covered / n >= 0.9


def test_no_law_established_prints_no_balance_point_on_clustered_null_tables() -> None:
    # Clustered tables without effect (8 clusters, shared logit shifts): whenever the
    # trend test does not establish a law, the reported balance point is "none", with
    # every estimate option (main printed a number in most of them).
    from modprobe.analysis.following.simulate import simulate_clustered_law

    rng = np.random.default_rng(5)
    seen = named = 0
    for d in range(12):
        x, y, c = simulate_clustered_law(8, 30, 0.0, 0.0, 1.0, rng, x_spread=0.4)
        for estimate in ("auto", "logistic", "monotone"):
            law = fit_law(x, y, n_bootstrap=200, clusters=c, isotonic_band=False, seed=d,
                          balance_estimate=estimate)
            shown = law.reported_balance_point
            if law.monotonicity.direction is None:
                seen += 1
                assert not shown.crosses and shown.summary().startswith("balance_point=none (")
                chosen = (law.balance_point_monotone if law.estimate == "monotone"
                          else law.balance_point)
                if chosen.crosses:  # a curve that stays on one side keeps its own reason
                    named += 1
                    assert "(no law is established: no monotone trend" in shown.summary()
    assert seen >= 24 and named >= 6, (seen, named)


def test_the_recommended_estimate_is_reported_unless_one_is_forced() -> None:
    from modprobe.analysis.following.simulate import simulate_step_law

    x, y, c = simulate_step_law(30, 20, -1.8, 0.8, 0.25, 0.5, np.random.default_rng(0))
    law = fit_law(x, y, n_bootstrap=200, clusters=c, isotonic_band=False)
    assert law.recommendation == "monotone" and law.monotonicity.direction == "decreasing"
    assert law.reported_balance_point is law.balance_point_monotone  # default: auto
    forced = fit_law(x, y, n_bootstrap=200, clusters=c, isotonic_band=False,
                     balance_estimate="logistic")
    assert forced.reported_balance_point is forced.balance_point


def test_separated_items_get_no_logistic_balance_point() -> None:
    # The logistic MLE does not exist when x separates the outcomes: no number from it.
    law = fit_law([0.0, 1.0, 2.0], [True, False, False], n_bootstrap=50)
    assert not law.balance_point.crosses
    assert "no maximum-likelihood estimate" in law.balance_point.reason
    assert law.balance_point_monotone.crosses  # the monotone one needs no MLE
    x = np.r_[np.linspace(-2, -0.1, 40), np.linspace(0.1, 2, 40)]
    y = np.r_[np.ones(40), np.zeros(40)].astype(bool)
    law = fit_law(x, y, n_bootstrap=100)
    assert law.monotonicity.direction == "decreasing"
    assert not law.balance_point.crosses and law.recommendation == "monotone"
    assert law.reported_balance_point.value == pytest.approx(0.0)
