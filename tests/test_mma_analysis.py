"""MMA analyses on planted truths: Cohen's d per layer and accuracy per condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modprobe.analysis.mma.measures import (
    accuracy_table,
    attention_contrast,
    cohens_d,
    d_interval,
    mass_curves,
    plot_d_per_layer,
)


def test_cohens_d_pooled_sd_and_hedges() -> None:
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 5.0, 7.0])
    sp = np.sqrt((3 * x.var(ddof=1) + 2 * y.var(ddof=1)) / 5)
    assert cohens_d(x, y) == pytest.approx((x.mean() - y.mean()) / sp)
    assert cohens_d(x, y, hedges=True) == pytest.approx(cohens_d(x, y) * (1 - 3 / (4 * 7 - 9)))
    assert np.isnan(cohens_d([1.0], y)) and np.isnan(cohens_d([1.0, 1.0], [1.0, 1.0]))


def _clips(rng: np.random.Generator, n_clips: int, d_true: float, heavy: bool = False):
    """Visual and audio question per clip; a shared clip effect (clustering) and, when
    ``heavy``, skewed errors (a misspecified, non-normal model). Population SD is 1."""
    clip = rng.normal(0, np.sqrt(0.5), n_clips)
    err = (rng.exponential(1.0, (2, n_clips)) - 1.0) if heavy else rng.normal(0, 1, (2, n_clips))
    visual = d_true + clip + np.sqrt(0.5) * err[0]
    audio = clip + np.sqrt(0.5) * err[1]
    ids = np.arange(n_clips).astype(str)
    return visual, audio, ids


def test_a_planted_d_is_recovered() -> None:
    visual, audio, ids = _clips(np.random.default_rng(0), 4000, 0.8)
    interval = d_interval(visual, audio, ids, ids, n_bootstrap=300)
    assert interval.estimate == pytest.approx(0.8, abs=0.06)
    assert interval.low < 0.8 < interval.high and interval.n_clusters == 4000


@pytest.mark.slow
@pytest.mark.parametrize("heavy", [False, True])
def test_interval_coverage_with_clustered_and_skewed_data(heavy: bool) -> None:
    """95% intervals cover the planted d in 91-98% of 600 repeated studies of 100 clips.

    (The percentile bootstrap of d undercovers with few clips: about 0.92 at 40 clips and
    0.89-0.92 at 20, measured the same way; docs/mma.md says so.)
    """
    rng = np.random.default_rng(1 if heavy else 2)
    hits = []
    for rep in range(600):
        visual, audio, ids = _clips(rng, 100, 0.5, heavy)
        interval = d_interval(visual, audio, ids, ids, n_bootstrap=500, seed=rep, hedges=True)
        hits.append(interval.low <= 0.5 <= interval.high)
    coverage = float(np.mean(hits))
    assert 0.91 <= coverage <= 0.98, coverage  # 600 studies: 3 SE is about 0.027


def _tables(rng: np.random.Generator, n_clips: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answers and attention rows of two conditions, three layers, three spans, two draws.

    Planted: under ``aligned`` video mass rises with the visual prompt by d = 1.0 in
    layer 2 (0 elsewhere); accuracy is 0.9 aligned, 0.4 misaligned for audio prompts.
    """
    answers, attention = [], []
    for clip in range(n_clips):
        effect = rng.normal(0, np.sqrt(0.5))
        for ask in ("visual", "audio"):
            item = f"c{clip}:{ask}"
            for condition in ("aligned", "misaligned"):
                p = 0.4 if (condition, ask) == ("misaligned", "audio") else 0.9
                noise = rng.normal(0, np.sqrt(0.5))
                for draw in range(2):
                    answers.append({"item": item, "cluster": f"c{clip}", "ask": ask,
                                    "condition": condition, "draw": draw,
                                    "correct": int(rng.random() < p)})
                    for layer in range(3):
                        for span in ("video", "audio", "text"):
                            shift = 1.0 if (span, layer, ask, condition) == (
                                "video", 2, "visual", "aligned") else 0.0
                            mass = (0.3 if span == "video" else 0.1) + 0.05 * (
                                shift + effect + noise)
                            attention.append({"item": item, "cluster": f"c{clip}", "ask": ask,
                                              "condition": condition, "draw": draw,
                                              "layer": layer, "span": span, "mass": mass})
    return pd.DataFrame(answers), pd.DataFrame(attention)


def test_tables_per_condition_and_layer(tmp_path: Path) -> None:
    answers, attention = _tables(np.random.default_rng(3))
    acc = accuracy_table(answers, n_bootstrap=500).set_index(["condition", "ask"])
    assert acc.loc[("misaligned", "audio"), "accuracy"] == pytest.approx(0.4, abs=0.1)
    assert acc.loc[("aligned", "visual"), "accuracy"] == pytest.approx(0.9, abs=0.07)
    assert (acc["n"] == 60).all() and (acc["n_clusters"] == 60).all() and (acc["draws"] == 2).all()
    # draws averaged per item are not 0/1 but still a rate: its declared kind picks
    # the Korn-Graubard interval (stats)
    assert (acc["method"] == "korn-graubard").all()
    contrast = attention_contrast(attention, n_bootstrap=300)
    assert len(contrast) == 2 * 3 * 3
    planted = contrast.set_index(["condition", "layer", "span"])
    hit = planted.loc[("aligned", 2, "video")]
    assert hit["low"] > 0.5 and hit["d"] == pytest.approx(1.0, abs=0.35)
    others = contrast[~((contrast["condition"] == "aligned") & (contrast["layer"] == 2)
                        & (contrast["span"] == "video"))]
    assert (others["d"].abs() < 0.6).all()
    assert (contrast["n_clusters"] == 60).all()
    fig = plot_d_per_layer(contrast, path=tmp_path / "d.png")
    assert [ax.get_title() for ax in fig.axes] == ["aligned", "misaligned"]
    assert (tmp_path / "d.png").stat().st_size > 10_000
    curves = mass_curves(attention)
    assert set(curves["condition"]) == {"visual prompt", "audio prompt"}
    assert len(curves) == len(attention) // 2  # draws averaged


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="lacks column.*correct"):
        accuracy_table(pd.DataFrame({"item": [1]}))


def test_contrast_change_recovers_a_planted_change_and_nothing_else() -> None:
    from modprobe.analysis.mma.measures import contrast_change

    _, before = _tables(np.random.default_rng(3))
    # After: the visual prompt's audio mass in layer 1 drops by one within-group SD (about
    # d = -1 more than before), in both conditions; every other cell is unchanged.
    after = before.copy()
    hit = (after["span"] == "audio") & (after["layer"] == 1) & (after["ask"] == "visual")
    after.loc[hit, "mass"] -= 0.05
    change = contrast_change(before, after, n_bootstrap=400).set_index(
        ["condition", "layer", "span"])
    for condition in ("aligned", "misaligned"):
        row = change.loc[(condition, 1, "audio")]
        assert row["change"] == pytest.approx(row["d_after"] - row["d_before"])
        assert row["change"] == pytest.approx(-1.0, abs=0.3) and row["high"] < -0.5
    rest = change.drop(index=[("aligned", 1, "audio"), ("misaligned", 1, "audio")])
    assert (rest["change"] == 0).all() and (rest["low"] == 0).all() and (rest["high"] == 0).all()
    assert (change["n_clusters"] == 60).all()
    with pytest.raises(ValueError, match="same clips"):
        contrast_change(before, after[after["item"] != "c0:visual"])


def test_compare_mma_pairs_items_per_condition_and_prompt_type() -> None:
    from modprobe.analysis.mma.compare import compare_mma

    answers, _ = _tables(np.random.default_rng(4))
    answers = answers.assign(gold="x", answer=np.where(answers["correct"] == 1, "x", "y"))
    # After: every misaligned audio answer right; everything else as before.
    after = answers.copy()
    fixed = (after["condition"] == "misaligned") & (after["ask"] == "audio")
    after.loc[fixed, ["correct", "answer"]] = [1, "x"]
    table = compare_mma(answers, after, ("before", "after"), n_bootstrap=400)
    acc = table[table["measure"] == "accuracy"].set_index(["ask", "condition"])
    row = acc.loc[("audio", "misaligned")]
    per_item = answers[fixed].groupby("item")["correct"].mean()
    assert row["difference"] == pytest.approx(1 - per_item.mean())
    assert row["low"] > 0 and row["p"] < 0.001 and row["n"] == 60
    assert (acc.drop(index=[("audio", "misaligned")])["method"] == "identical").all()
    with pytest.raises(ValueError, match="aligned"):
        compare_mma(answers[answers["condition"] != "aligned"], after)


def test_compare_mma_flips_count_against_the_one_aligned_run() -> None:
    """MMA runs ``aligned`` once and redraws ``misaligned``: a draw with the aligned answer
    is no flip, whatever its draw number."""
    from modprobe.analysis.mma.compare import compare_mma

    rows = [{"item": f"c{clip}:visual", "cluster": f"c{clip}", "ask": "visual",
             "condition": condition, "draw": draw, "answer": "x", "gold": "x", "correct": 1}
            for clip in range(12)
            for condition, draws in (("aligned", 1), ("misaligned", 3))
            for draw in range(draws)]
    before = pd.DataFrame(rows)
    after = before.copy()
    moved = (after["condition"] == "misaligned") & (after["draw"] == 2) \
        & after["cluster"].isin(["c0", "c1", "c2"])
    after.loc[moved, ["answer", "correct"]] = ["y", 0]
    table = compare_mma(before, after, ("before", "after"), n_bootstrap=200)
    flips = table[table["measure"] == "flip rate"].set_index("condition").loc["misaligned"]
    assert flips["a"] == 0.0
    assert flips["b"] == pytest.approx(3 / 12 / 3)  # 3 of 12 clips flip in 1 of 3 draws
