"""Oscillation counting, regions and the logit-difference matrix (docs/science.md s. 1)."""

from __future__ import annotations

import numpy as np
import pytest

from modprobe.analysis.following.law import BalancePoint
from modprobe.analysis.following.logit_difference import logit_difference, logit_difference_matrix
from modprobe.analysis.following.oscillation import (
    AMBIGUOUS,
    CLEAR,
    UNASSIGNED,
    assign_regions,
    count_switches,
    layer_states,
    oscillation_counts,
    oscillation_report,
    states_from_logits,
)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ("VOT", 1),  # the paper's example: 'other' in between is ignored
        ("TVT", 2),
        ("TTVV", 1),
        ("TTOT", 0),  # leaving for 'other' and coming back is no switch
        ("VOOTOV", 2),
        ("OOOO", 0),  # all other
        ("T", 0),  # single layer
        ("O", 0),
        ("", 0),
        ("OVOOOO", 0),
        ("TVTVTV", 5),
    ],
)
def test_switch_counts_by_hand(states: str, expected: int) -> None:
    assert count_switches(list(states)) == expected


def test_layer_states_from_token_strings_and_ids() -> None:
    top1 = ["the", " Red", "blue", "BLUE ", ",", "red"]
    assert layer_states(top1, "red", "blue") == ["O", "T", "V", "V", "O", "T"]
    assert layer_states([5, 7, 9, 7], 7, 9) == ["O", "T", "V", "T"]
    with pytest.raises(ValueError, match="not a conflict"):
        layer_states(["red"], "red", " Red")


def test_tie_rule_makes_a_tied_layer_undecided() -> None:
    lt = np.array([2.0, 1.0, 0.0, 3.0, 5.0])
    lv = np.array([1.0, 1.0, 0.0, 2.0, 1.0])
    lo = np.array([0.0, 0.0, 0.5, 3.0, 0.0])
    # layer 1: T and V tie at the top; layer 2: other wins; layer 3: T ties with other.
    assert states_from_logits(lt, lv, lo) == ["T", "O", "O", "O", "T"]
    # T (tie) V counts one switch; T (tie) T counts none.
    assert count_switches(states_from_logits([2.0, 1.0, 0.0], [1.0, 1.0, 3.0])) == 1
    assert count_switches(states_from_logits([2.0, 1.0, 3.0], [1.0, 1.0, 0.0])) == 0


def test_counts_for_items_with_ragged_layers_and_non_conflicts() -> None:
    counts = oscillation_counts(
        [["red", "blue", "red"], ["x", "blue"], ["red", "blue"], ["red"]],
        ["red", "red", "red", "blue"],
        ["blue", "blue", "red", "blue"],
    )
    assert counts[:2].tolist() == [2.0, 0.0]
    assert np.isnan(counts[2]) and np.isnan(counts[3])  # Y_t == Y_v: flagged, not 0


def test_counts_from_a_2d_array() -> None:
    tokens = np.array([[1, 2, 1, 2], [3, 3, 1, 1]])
    np.testing.assert_array_equal(oscillation_counts(tokens, [1, 1], [2, 3]), [3.0, 1.0])


def test_region_boundary_is_inclusive() -> None:
    regions = assign_regions([-0.3, 0.2, 0.7, 0.71, np.nan], balance_point=0.2, radius=0.5)
    assert regions.tolist() == [AMBIGUOUS, AMBIGUOUS, AMBIGUOUS, CLEAR, UNASSIGNED]


def test_report_means_by_region_and_group() -> None:
    x = np.array([0.0, 0.1, -0.2, 1.5, -1.5, 1.9, 0.0, 0.0, 0.3])
    counts = np.array([2, 1, 3, 0, 1, 0, 1, np.nan, 4], dtype=float)
    groups = ["conflict"] * 6 + ["text_irrelevant"] * 2 + ["conflict"]
    report = oscillation_report(counts, x, balance_point=0.0, groups=groups, n_bootstrap=500)
    by_region = report.by_region.set_index("region")
    assert by_region.loc[AMBIGUOUS, "n"] == 4 and by_region.loc[AMBIGUOUS, "mean"] == 2.5
    assert by_region.loc[CLEAR, "n"] == 3 and by_region.loc[CLEAR, "mean"] == pytest.approx(1 / 3)
    amb = by_region.loc[AMBIGUOUS]
    assert amb["ci_low"] <= amb["mean"] <= amb["ci_high"] and amb["ci_low"] < amb["ci_high"]
    by_group = report.by_group.set_index("group")
    assert by_group.loc["text_irrelevant", "n"] == 1  # the NaN (non-conflict) is left out
    assert by_group.loc["text_irrelevant", "mean"] == 1.0
    assert report.n_no_conflict == 1
    assert report.per_item.loc[6, "region"] == UNASSIGNED  # controls get no region
    diff, lo, hi = report.ambiguous_minus_clear
    assert diff == pytest.approx(2.5 - 1 / 3) and lo < diff < hi
    assert any(line.startswith("oscillation ambiguous: 2.50") for line in report.summary_lines())


def test_report_without_a_crossing_balance_point_explains_itself() -> None:
    bp = BalancePoint(
        float("nan"),
        float("nan"),
        float("nan"),
        False,
        "text",
        "stays above",
        3.0,
        (-1.0, 1.0),
        0.0,
        0.95,
        10,
    )
    report = oscillation_report([1.0, 0.0], [0.1, 0.2], balance_point=bp)
    assert report.by_region.empty
    assert "stays above" in report.note
    assert report.by_group["mean"].tolist() == [0.5]


def test_logit_difference_from_lens_logits() -> None:
    logits = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)  # items layers vocab
    logits[1, :, 4] = -1.0
    diff = logit_difference(logits, text_ids=[1, 4], vision_ids=[3, 0])
    assert diff.shape == (3, 2)  # layers items
    np.testing.assert_allclose(diff[:, 0], -2.0)
    np.testing.assert_allclose(diff[:, 1], -1.0 - logits[1, :, 0])


def test_logit_difference_matrix_orders_items_and_drops_degenerate() -> None:
    d = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    m = logit_difference_matrix(d, [0.5, -1.0, np.nan, 0.0])
    np.testing.assert_array_equal(m.order, [1, 3, 0])
    np.testing.assert_array_equal(m.x, [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(m.values, [[2.0, 4.0, 1.0], [6.0, 8.0, 5.0]])
    with pytest.raises(ValueError):
        logit_difference_matrix(d, [0.0, 1.0])


def test_cluster_bootstrap_of_oscillation_means_covers_a_planted_mean() -> None:
    # 12 clusters of 40 items whose counts share a cluster effect: Poisson(exp(0.5 + u)),
    # u ~ Normal(0, 0.5), so every region's true mean is exp(0.5 + 0.5**2 / 2).
    rng = np.random.default_rng(0)
    truth = np.exp(0.5 + 0.5**2 / 2)
    codes = np.repeat(np.arange(12), 40)
    covered = {"item": 0, "cluster": 0}
    for d in range(150):
        counts = rng.poisson(np.exp(0.5 + rng.normal(0, 0.5, 12)[codes])).astype(float)
        x = rng.uniform(-2, 2, codes.size)
        for unit, clusters in (("item", None), ("cluster", codes)):
            report = oscillation_report(counts, x, 0.0, n_bootstrap=300, seed=d,
                                        clusters=clusters)
            row = report.by_region.set_index("region").loc["ambiguous"]
            covered[unit] += row.ci_low <= truth <= row.ci_high
    # The studentised cluster bootstrap keeps its level over 12 clusters (0.94 here;
    # percentile intervals covered 0.85); over items the intervals ignore the shared
    # effect and miss far more often (0.64).
    assert covered["cluster"] / 150 >= 0.90, covered
    assert covered["item"] / 150 <= 0.72, covered


def test_singleton_clusters_match_the_item_bootstrap() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, 600).astype(float)
    counts[:20] = np.nan  # non-conflicts are left out either way
    x = rng.uniform(-2, 2, 600)
    by_item = oscillation_report(counts, x, 0.0, n_bootstrap=2000)
    by_cluster = oscillation_report(counts, x, 0.0, n_bootstrap=2000, clusters=np.arange(600))
    assert by_cluster.n_clusters == 600 and by_item.n_clusters is None
    for a, b in ((by_item.by_region, by_cluster.by_region), (by_item.by_group, by_cluster.by_group)):
        assert np.allclose(a["mean"], b["mean"]) and (a["n"] == b["n"]).all()
        width_a, width_b = a["ci_high"] - a["ci_low"], b["ci_high"] - b["ci_low"]
        assert np.all(np.abs(width_b / width_a - 1) < 0.15)
    d_item, d_cluster = by_item.ambiguous_minus_clear, by_cluster.ambiguous_minus_clear
    assert d_item[0] == pytest.approx(d_cluster[0])
    assert (d_cluster[2] - d_cluster[1]) / (d_item[2] - d_item[1]) == pytest.approx(1, abs=0.15)
    assert ("oscillation intervals: studentised bootstrap over 600 clusters (CR2 error)"
            in by_cluster.summary_lines())


def test_regions_go_to_the_law_items_only() -> None:
    from modprobe.analysis.following.oscillation import region_items

    # text, vision, follows neither, no conflict, text but degenerate, vision but filtered
    y_text = ["red", "red", "red", "red", "red", "red"]
    y_vision = ["blue", "blue", "blue", "red", "blue", "blue"]
    y_multi = ["red", "blue", "green", "red", "red", "blue"]
    degenerate = [False, False, False, False, True, False]
    both = [True, True, True, True, True, False]
    mask = region_items(y_text, y_vision, y_multi, degenerate, both)
    assert mask.tolist() == [True, True, False, False, False, False]
    counts = np.array([1.0, 2.0, 3.0, np.nan, 1.0, 1.0])
    report = oscillation_report(counts, np.zeros(6), 0.0, in_regions=mask, n_bootstrap=50)
    assert int(report.by_region["n"].sum()) == 2


def _oscillation_dataset(rng: np.random.Generator, n_clusters: int):
    """Planted oscillation counts: clusters of 20-59 items, each with a skewed (Gamma,
    shape 2, mean 1) multiplier of its items' Poisson rates; conflicts oscillate 1.5
    times on average near the balance point (|x| <= 0.5, a quarter of them) and 0.8
    times away from it, the text-irrelevant controls 0.5 times."""
    sizes = rng.integers(20, 60, n_clusters)
    codes = np.repeat(np.arange(n_clusters), sizes)
    effect = rng.gamma(2.0, 0.5, n_clusters)[codes]
    x = rng.uniform(-2.0, 2.0, codes.size)
    control = rng.random(codes.size) < 0.2
    rate = np.where(control, 0.5, np.where(np.abs(x) <= 0.5, 1.5, 0.8))
    counts = rng.poisson(rate * effect).astype(float)
    groups = np.where(control, "text_irrelevant", "conflict")
    return counts, x, groups, codes


@pytest.mark.parametrize("n_clusters", [8, 12])
def test_every_oscillation_interval_keeps_its_level_with_few_clusters(n_clusters: int) -> None:
    # Every interval the report prints (both regions, the difference, both groups)
    # against its planted truth. The expanded percentile bootstrap this replaced covered
    # 0.87-0.92 here with 8 clusters. 400 datasets: a coverage's standard error is
    # about 0.011.
    truths = {("region", AMBIGUOUS): 1.5, ("region", CLEAR): 0.8, ("difference", ""): 0.7,
              ("group", "text_irrelevant"): 0.5,
              ("group", "conflict"): 0.25 * 1.5 + 0.75 * 0.8}
    rng = np.random.default_rng(5)
    covered = dict.fromkeys(truths, 0)
    reps = 400
    for r in range(reps):
        counts, x, groups, codes = _oscillation_dataset(rng, n_clusters)
        report = oscillation_report(counts, x, 0.0, groups=groups, clusters=codes,
                                    n_bootstrap=400, seed=r)
        rows = {("region", row.region): (row.ci_low, row.ci_high)
                for row in report.by_region.itertuples()}
        rows |= {("group", row.group): (row.ci_low, row.ci_high)
                 for row in report.by_group.itertuples()}
        rows[("difference", "")] = report.ambiguous_minus_clear[1:]
        for key, truth in truths.items():
            covered[key] += rows[key][0] <= truth <= rows[key][1]
    coverage = {key: value / reps for key, value in covered.items()}
    assert min(coverage.values()) >= 0.93, coverage
