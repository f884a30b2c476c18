"""Following classification, macro rates and the high-level report (docs/science.md s. 1)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from modprobe.analysis.following.rates import (
    NO_CONFLICT,
    OTHER,
    TEXT,
    VISION,
    classify_following,
    following_rates,
    wilson_interval,
)
from modprobe.analysis.following.report import analyze_following
from modprobe.analysis.following.simulate import simulate_following_table
from modprobe.analysis.table import TableError


def test_classification_by_hand() -> None:
    labels = classify_following(
        ["red", "red", "red", "blue", " Green", "red", 3],
        ["blue", "blue", "blue", "blue", "yellow", "blue", 4],
        ["red", "blue", "purple", "blue", "green ", None, 4],
    )
    assert labels.tolist() == [TEXT, VISION, OTHER, NO_CONFLICT, TEXT, OTHER, VISION]


def test_missing_unimodal_answer_is_not_a_conflict() -> None:
    assert classify_following([None], ["red"], ["red"]).tolist() == [NO_CONFLICT]


def test_classification_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        classify_following(["a"], ["b", "c"], ["a"])


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Roots of (k/n - p)^2 = z^2 p (1 - p) / n, the Wilson interval's definition.
    [
        (5, 10, 0.236593, 0.763407),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (81, 263, 0.255289, 0.366210),
    ],
)
def test_wilson_interval_reference_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-5)
    assert hi == pytest.approx(high, abs=1e-5)


def test_wilson_interval_of_nothing_is_nan() -> None:
    assert all(np.isnan(v) for v in wilson_interval(0, 0))


def test_rates_count_and_exclude_other_and_non_conflicts() -> None:
    labels = [TEXT] * 3 + [VISION] * 7 + [OTHER] * 2 + [NO_CONFLICT] * 4
    rates = following_rates(labels)
    assert (rates.n_text, rates.n_vision, rates.n_other, rates.n_no_conflict) == (3, 7, 2, 4)
    assert rates.tfr == pytest.approx(0.3)
    assert rates.vfr == pytest.approx(0.7)
    assert rates.tfr_ci == wilson_interval(3, 10)
    assert rates.vfr_ci == pytest.approx((1 - rates.tfr_ci[1], 1 - rates.tfr_ci[0]))


def test_correctness_filter_keeps_items_with_both_unimodal_answers_correct() -> None:
    labels = [TEXT, TEXT, VISION, VISION, NO_CONFLICT]
    correct_text = [True, False, True, True, False]
    correct_vision = [True, True, True, False, False]
    rates = following_rates(labels, correct_text, correct_vision, filter_correct=True)
    assert (rates.n_text, rates.n_vision, rates.n_filtered) == (1, 1, 2)
    assert rates.tfr == pytest.approx(0.5)
    with pytest.raises(ValueError, match="correct_text"):
        following_rates(labels, filter_correct=True)


def test_analyze_following_per_model_with_groups() -> None:
    table = pd.concat(
        [
            simulate_following_table(1500, balance_point=-0.5, seed=1, model="A"),
            simulate_following_table(1500, balance_point=0.4, seed=2, model="B"),
            simulate_following_table(300, seed=3, model="A", group="text_irrelevant"),
        ],
        ignore_index=True,
    )
    report = analyze_following(table, n_bootstrap=200, split=False, isotonic_band=False)
    assert list(report.models) == ["A", "B"]
    a, b = report.models["A"], report.models["B"]
    assert len(a.items) == 1500  # the control group is not part of the law
    assert a.law.balance_point.value == pytest.approx(-0.5, abs=0.1)
    assert b.law.balance_point.value == pytest.approx(0.4, abs=0.1)
    # More vision preference (balance point further left) means a lower TFR.
    assert a.rates.tfr < b.rates.tfr
    lines = report.summary_lines()
    ends = [i for i, line in enumerate(lines) if line.startswith("balance_point=")]
    assert len(ends) == 2 and ends[-1] == len(lines) - 1
    assert lines[ends[0] + 1] == ""  # each model block ends with its balance point
    assert re.fullmatch(r"balance_point=-?\d+\.\d{3} ci=\[-?\d+\.\d{3}, -?\d+\.\d{3}\]", lines[-1])


def test_analyze_following_excludes_degenerate_and_filtered_items_from_the_law() -> None:
    table = simulate_following_table(400, seed=4, share_incorrect=0.2)
    table.loc[:9, ["h_text", "h_vision"]] = 0.0
    report = analyze_following(
        table, filter_correct=True, n_bootstrap=50, split=False, isotonic_band=False
    )
    m = report.models["simulated"]
    assert m.items["degenerate"].sum() == 10
    wrong = ~(table["correct_text"] & table["correct_vision"])
    expected = (~wrong) & (m.items["label"].isin([TEXT, VISION])) & ~m.items["degenerate"]
    assert m.items["in_law"].tolist() == expected.tolist()
    assert m.law.n == int(expected.sum())


def test_analyze_following_reports_missing_law_instead_of_crashing() -> None:
    table = simulate_following_table(20, seed=5)
    table["y_multi"] = "nonsense"  # every item is 'other'
    report = analyze_following(table.drop(columns="model"), n_bootstrap=20)
    m = report.models["model"]  # the default name when the table has no model column
    assert m.law is None
    assert m.summary_lines()[-1].startswith("balance_point=none (law not fitted")


def test_analyze_following_rejects_absent_group_and_bad_options() -> None:
    table = simulate_following_table(50, seed=6)
    with pytest.raises(TableError, match="group"):
        analyze_following(table, conflict_group="nope")
    with pytest.raises(ValueError):
        analyze_following(table, n_bootstrap=0)


def test_saturation_warning_appears_for_saturated_models() -> None:
    from modprobe.analysis.following.simulate import simulate_saturated_table

    table = simulate_saturated_table(600, seed=7, share_saturated=0.95)
    lines = analyze_following(table, n_bootstrap=50, split=False).summary_lines()
    assert any(line.startswith("warning: saturation") for line in lines)
    calm = analyze_following(simulate_following_table(600, seed=7), n_bootstrap=50, split=False)
    assert not any("saturation" in line for line in calm.summary_lines())


def test_analyze_following_bootstraps_clusters_of_a_cluster_column() -> None:
    table = simulate_following_table(400, seed=3)
    table["cluster"] = [f"g{i % 8}" for i in range(len(table))]
    by_item = analyze_following(table, n_bootstrap=200, cluster=None).models["simulated"]
    by_cluster = analyze_following(table, n_bootstrap=200, cluster="cluster").models["simulated"]
    found = analyze_following(table, n_bootstrap=200).models["simulated"]  # cluster="auto"
    assert by_item.law.n_clusters is None and by_cluster.law.n_clusters == 8
    assert found.law.n_clusters == 8 and found.cluster_found
    assert by_cluster.law.balance_point.value == by_item.law.balance_point.value
    lines = by_cluster.summary_lines()
    assert any(line.startswith("bootstrap over 8 clusters of items (column 'cluster', given)")
               and "rough" in line for line in lines)
    assert any("(column 'cluster', found in the table)" in line
               for line in found.summary_lines())
    assert lines[-1].startswith("balance_point=")
    assert by_cluster.split is not None and by_cluster.split.low.n_clusters == 8


def test_analyze_following_cluster_column_errors_and_single_cluster_fallback() -> None:
    table = simulate_following_table(200, seed=4)
    with pytest.raises(TableError, match="no column 'cluster'"):
        analyze_following(table, cluster="cluster")
    table["cluster"] = "g0"
    table.loc[5, "cluster"] = None
    with pytest.raises(TableError, match=r"1 row\(s\) have no 'cluster' label"):
        analyze_following(table, cluster="cluster")
    table["cluster"] = "g0"
    model = analyze_following(table, n_bootstrap=50, cluster="cluster").models["simulated"]
    assert model.law is not None and model.law.n_clusters is None
    assert "span 1 cluster(s)" in (model.note or "")


def test_normalize_answer_is_the_one_normaliser() -> None:
    from modprobe.analysis import normalize_answer

    assert normalize_answer(" Red.") == normalize_answer("red") == "red"
    assert normalize_answer('"Blue"!') == "blue"
    assert normalize_answer(".") == "."  # punctuation only: kept, not an empty answer
    assert normalize_answer("  ") == ""
    assert normalize_answer(None) is None and normalize_answer(float("nan")) is None
    assert normalize_answer(np.int64(7)) == 7
    # Y_m "Red." follows the text answer "red".
    assert classify_following(["red"], ["blue"], ["Red."]).tolist() == ["text"]


def test_cluster_interval_of_tfr_covers_a_planted_rate_where_wilson_does_not() -> None:
    # 12 clusters of 40 conflict items; cluster c follows the text with
    # P = sigmoid(-0.8 + u_c), u_c ~ Normal(0, 1): the population's TFR is E[P].
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    truth = float(np.sum(weights / np.sqrt(2 * np.pi) / (1 + np.exp(0.8 - nodes))))
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(12), 40)
    covered = {"wilson": 0, "cluster": 0}
    for d in range(200):
        p = 1 / (1 + np.exp(0.8 - rng.normal(0, 1, 12)[codes]))
        labels = np.where(rng.random(codes.size) < p, "text", "vision")
        for unit, clusters in (("wilson", None), ("cluster", codes)):
            rates = following_rates(labels, clusters=clusters, n_bootstrap=400, seed=d)
            covered[unit] += rates.tfr_ci[0] <= truth <= rates.tfr_ci[1]
    assert covered["cluster"] / 200 >= 0.85, covered
    assert covered["wilson"] / 200 <= 0.7, covered


def test_tfr_keeps_wilson_with_one_cluster_and_counts_only_decided_items() -> None:
    labels = np.array(["text", "vision", "other", "no_conflict"] * 10, dtype=object)
    one = following_rates(labels, clusters=["g0"] * 40)
    assert one.n_clusters is None and one.tfr_ci == following_rates(labels).tfr_ci
    clusters = [f"g{i % 5}" for i in range(40)]
    rates = following_rates(labels, clusters=clusters, n_bootstrap=200)
    assert rates.n_clusters == 5 and rates.tfr == 0.5
    assert rates.tfr_ci[0] <= 0.5 <= rates.tfr_ci[1]
    assert rates.vfr_ci == pytest.approx((1 - rates.tfr_ci[1], 1 - rates.tfr_ci[0]))
