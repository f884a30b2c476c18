"""modprobe.analysis.interference.effects: planted flip rates recovered, interval coverage, tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modprobe.analysis.interference.effects import (
    InterferenceTableError,
    analyze_interference,
    attention_shift,
    read_predictions,
)
from modprobe.interference import main

OPTIONS = ["red", "blue", "green", "yellow"]
LINE = re.compile(r"^(\w+): accuracy=(\d\.\d{3}) ci=\[(\d\.\d{3}), (\d\.\d{3})\]"
                  r"(?: delta=(\d\.\d{3}) ci=\[(\d\.\d{3}), (\d\.\d{3})\])? n=(\d+)$")


def simulate(rng: np.random.Generator, flip: dict[str, float], clusters: int, size: int,
             concentration: float | None, clean_accuracy: float = 0.8) -> pd.DataFrame:
    """A prediction table with planted flip rates.

    Each item's clean answer is right with ``clean_accuracy``; under perturbation P it
    changes to another option with probability ``p``: ``flip[P]`` for independent items,
    or a per-cluster ``p ~ Beta`` with mean ``flip[P]`` and the given concentration (the
    smaller, the more items of one cluster flip together). The population flip rate is
    ``flip[P]`` either way.
    """
    rows = []
    for c in range(clusters):
        rates = {name: (rng.beta(p * concentration, (1 - p) * concentration)
                        if concentration else p) for name, p in flip.items()}
        for k in range(size):
            item, gold = f"c{c}-{k}", OPTIONS[int(rng.integers(4))]
            clean = gold if rng.random() < clean_accuracy else rng.choice(
                [o for o in OPTIONS if o != gold])
            rows.append((item, "clean", clean, gold, f"c{c}"))
            for name, rate in rates.items():
                answer = rng.choice([o for o in OPTIONS if o != clean]) \
                    if rng.random() < rate else clean
                rows.append((item, name, answer, gold, f"c{c}"))
    return pd.DataFrame(rows, columns=["id", "perturbation", "answer", "gold", "cluster"])


PLANTED = {"UF": 0.1, "MD": 0.45, "RP": 0.25}


def test_planted_flip_rates_are_recovered() -> None:
    table = read_predictions(simulate(np.random.default_rng(0), PLANTED, 200, 10, None))
    report = analyze_interference(table, cluster="cluster", n_bootstrap=500)
    for name, p in PLANTED.items():
        delta = report.condition(name).delta
        assert abs(delta.estimate - p) < 0.03 and delta.low < p < delta.high
    # a flip away from a right answer costs accuracy; a flip between wrong ones does not:
    # given the clean answers, the expected paired drop is p * (clean accuracy - share of
    # wrong clean answers / 3), a wrong answer flipping to the right one in 1 of 3 cases
    right = table.loc[table["perturbation"] == "clean", "correct"].mean()
    for name, p in PLANTED.items():
        drop = report.condition(name).accuracy_drop
        assert drop.low < p * (right - (1 - right) / 3) < drop.high, (name, drop)
    # the flip rate is the share of changed answers, not an accuracy difference
    flips = report.per_item[report.per_item["perturbation"] == "MD"]
    assert flips["flipped"].mean() == pytest.approx(report.condition("MD").delta.estimate)


def _coverage(concentration: float | None, use_clusters: bool, reps: int) -> float:
    rng = np.random.default_rng(1 if concentration else 2)
    hits = total = 0
    for _ in range(reps):
        table = read_predictions(simulate(rng, PLANTED, 30, 6, concentration))
        report = analyze_interference(table, cluster="cluster" if use_clusters else None,
                                      n_bootstrap=400, seed=int(rng.integers(1 << 31)))
        for name, p in PLANTED.items():
            delta = report.condition(name).delta
            hits += delta.low <= p <= delta.high
            total += 1
    return hits / total


@pytest.mark.slow
def test_interval_coverage_near_95_percent_independent_and_clustered() -> None:
    independent = _coverage(None, use_clusters=False, reps=150)   # Wilson
    clustered = _coverage(2.0, use_clusters=True, reps=150)       # cluster bootstrap
    naive = _coverage(2.0, use_clusters=False, reps=150)          # clusters ignored
    assert 0.92 <= independent <= 0.985, independent
    assert 0.89 <= clustered <= 0.985, clustered
    # ignoring strongly clustered flips undercovers: why the runner resamples clusters
    assert naive < clustered - 0.1, (naive, clustered)


def test_unreadable_answers_are_their_own_category() -> None:
    rows = [("a", "clean", "B", "blue", "red|blue"), ("a", "MD", "purple", "blue", "red|blue"),
            ("b", "clean", "maybe", "red", "red|blue"), ("b", "MD", "no idea", "red", "red|blue"),
            ("c", "clean", "red", "red", "red|blue"), ("c", "MD", "A. red", "red", "red|blue")]
    table = read_predictions(pd.DataFrame(rows, columns=["id", "perturbation", "answer", "gold",
                                                         "options"]))
    assert table["category"].tolist() == ["blue", "unreadable", "unreadable", "unreadable",
                                          "red", "red"]
    report = analyze_interference(table)
    md = report.condition("MD")
    # a: blue -> unreadable is a flip; b: unreadable -> unreadable is not; c: red -> red
    assert md.delta.estimate == pytest.approx(1 / 3) and md.n_unreadable == 2
    assert report.condition("clean").accuracy.estimate == pytest.approx(2 / 3)
    assert any("2 of 3 answers unreadable" in n for n in report.notes)


def test_lines_have_the_exact_form() -> None:
    table = read_predictions(simulate(np.random.default_rng(3), PLANTED, 10, 4, None))
    lines = [line for line in analyze_interference(table).lines() if not line.startswith("note")]
    assert [LINE.match(line).group(1) for line in lines] == ["clean", "UF", "MD", "RP"]
    assert LINE.match(lines[0]).group(5) is None and LINE.match(lines[1]).group(5) is not None


@pytest.mark.parametrize("rows, message", [
    ([("a", "clean", "red", "red")], "missing column"),
    ([("a", "clean", "red", "red", "x"), ("a", "clean", "blue", "red", "x")],
     "two rows for perturbation 'clean'"),
    ([("a", "MD", "red", "red", "x")], "no clean rows"),
    ([("a", "clean", "red", "red", "x"), ("b", "MD", "red", "red", "x")],
     "'b' has perturbed rows but no clean row"),
])
def test_bad_tables(rows: list[tuple], message: str) -> None:
    columns = ["id", "perturbation", "answer", "gold", "cluster"][:len(rows[0])]
    if len(rows[0]) == 4:
        columns = ["id", "perturbation", "answer", "cluster"]
    with pytest.raises(InterferenceTableError, match=message):
        read_predictions(pd.DataFrame(rows, columns=columns))


def test_attention_shift_is_paired_per_layer() -> None:
    rows = []
    for i in range(20):
        for layer in range(3):
            rows.append((f"i{i}", "clean", layer, "image", 0.1 * layer))
            rows.append((f"i{i}", "RP", layer, "image", 0.1 * layer + 0.2 + 0.01 * (i % 3)))
    shift = attention_shift(pd.DataFrame(rows, columns=["id", "perturbation", "layer", "span",
                                                        "mass"]), {"RP": "image"})
    assert shift["layer"].tolist() == [0, 1, 2]
    assert np.allclose(shift["clean"], [0.0, 0.1, 0.2])
    assert np.allclose(shift["shift"], 0.2 + 0.01 * np.mean([i % 3 for i in range(20)]))
    assert (shift["shift_low"] <= shift["shift"]).all() and (shift["shift"] <= shift["shift_high"]).all()


# ---------------------------------------------------------------- the TABLE form of the CLI
def test_table_cli_prints_lines_and_writes_summary(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "predictions.csv"
    simulate(np.random.default_rng(4), PLANTED, 12, 5, 4.0).to_csv(path, index=False)
    assert main([str(path), "--out", str(tmp_path / "out"), "--bootstrap", "300"]) == 0
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in printed if LINE.match(line)]
    assert [LINE.match(line).group(1) for line in lines] == ["clean", "UF", "MD", "RP"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cluster"] == "cluster"
    assert summary["lines"][:4] == lines
    assert {p.name for p in (tmp_path / "out" / "figures").iterdir()} == {"radar.png",
                                                                          "flip_rates.png"}
    # never overwritten
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_table_cli_gold_not_among_options_is_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.csv"
    pd.DataFrame([("a", "clean", "B", "pink", "red|blue"), ("a", "MD", "A", "pink", "red|blue")],
                 columns=["id", "perturbation", "answer", "gold", "options"]).to_csv(path,
                                                                                    index=False)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gold answer 'pink' is not among the options" in err
    assert not (tmp_path / "out").exists()


def test_figures_script_draws_several_runs_on_one_radar(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    runs = []
    for k, flips in enumerate(({"MD": 0.5, "RP": 0.2}, {"MD": 0.05, "RP": 0.1})):
        path = tmp_path / f"model{k}.csv"
        simulate(np.random.default_rng(k), flips, 6, 5, None).to_csv(path, index=False)
        assert main([str(path), "--out", str(tmp_path / f"run{k}"), "--bootstrap", "200",
                     "--no-figures"]) == 0
        runs.append(str(tmp_path / f"run{k}"))
    script = Path(__file__).parent.parent / "figures" / "interference.py"
    draw = runpy.run_path(str(script))["main"]
    assert draw([*runs, "--names", "base", "tuned", "--out", str(tmp_path / "fig")]) == 0
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"radar.png", "flip_rates.png"}
    assert draw([*runs, "--names", "one", "--out", str(tmp_path / "fig2")]) == 2
    assert "2 runs" in capsys.readouterr().err
    assert draw([str(tmp_path / "nothing"), "--out", str(tmp_path / "fig3")]) == 2


def _rerun(rng: np.random.Generator, table: pd.DataFrame, flip: dict[str, float]) -> pd.DataFrame:
    """Run B of run A's items: the same clean answers, perturbed answers redrawn with the
    flip rates ``flip`` (perturbations not named keep A's answers)."""
    clean = table[table["perturbation"] == "clean"].set_index("id")["answer"]
    out = table.copy()
    for i, row in out.iterrows():
        rate = flip.get(row["perturbation"])
        if rate is None:
            continue
        before = clean[row["id"]]
        out.loc[i, "answer"] = rng.choice([o for o in OPTIONS if o != before]) \
            if rng.random() < rate else before
    return out


def test_paired_comparison_recovers_a_planted_difference() -> None:
    from modprobe.analysis.interference.compare import compare_interference

    rng = np.random.default_rng(5)
    raw_a = simulate(rng, {"UF": 0.1, "MD": 0.45}, 40, 8, 4.0)
    raw_b = _rerun(rng, raw_a, {"MD": 0.15})
    result = compare_interference(read_predictions(raw_a), read_predictions(raw_b),
                                  n_bootstrap=1000)
    table = result.table.set_index(["perturbation", "measure"])
    md = table.loc[("MD", "flip rate")]
    assert md["low"] < -0.30 < md["high"] and abs(md["difference"] + 0.30) < 0.06
    assert md["p"] < 0.001 and md["n_clusters"] == 40 and md["n"] == 320
    # the difference is the paired mean: B's rate minus A's, on the same items
    assert md["difference"] == pytest.approx(md["b"] - md["a"])
    # UF answers are the same in both runs: no difference, nothing to test
    uf = table.loc[("UF", "flip rate")]
    assert uf["difference"] == uf["low"] == uf["high"] == 0 and np.isnan(uf["p"])
    assert uf["method"] == "identical"
    assert ("clean", "accuracy") in table.index and ("clean", "flip rate") not in table.index
    lines = result.lines()
    assert lines[1].startswith("clean: accuracy") and lines[3].startswith("MD: flip rate")


def test_paired_comparison_averages_draws_within_items() -> None:
    from modprobe.analysis.interference.compare import item_means

    rows = [("a", "clean", 0, "red", True, "g"), ("a", "MD", 0, "blue", False, "g"),
            ("a", "clean", 1, "red", True, "g"), ("a", "MD", 1, "red", True, "g"),
            ("b", "clean", 0, "red", False, "h"), ("b", "MD", 0, "red", False, "h"),
            ("b", "clean", 1, "blue", False, "h"), ("b", "MD", 1, "red", False, "h")]
    table = pd.DataFrame(rows, columns=["id", "perturbation", "draw", "category", "correct",
                                        "cluster"])
    means = item_means(table).set_index(["id", "perturbation"])
    # a flips in draw 0 only; b flips in draw 1 only (its clean answer differs by draw)
    assert means.loc[("a", "MD"), "flipped"] == 0.5 and means.loc[("b", "MD"), "flipped"] == 0.5
    assert means.loc[("a", "MD"), "correct"] == 0.5 and means.loc[("a", "MD"), "n_draws"] == 2
    assert np.isnan(means.loc[("a", "clean"), "flipped"])


def test_paired_comparison_refuses_runs_of_different_items(tmp_path: Path, capsys) -> None:
    from modprobe.analysis.interference.compare import RunsDifferError, compare_interference

    raw = simulate(np.random.default_rng(6), {"MD": 0.3}, 6, 4, None)
    a = read_predictions(raw)
    with pytest.raises(RunsDifferError, match=r"only in A, 0 only in B \(first: item 'c0-0'"):
        compare_interference(a, read_predictions(raw[raw["id"] != "c0-0"]))
    with pytest.raises(RunsDifferError, match="runs differ in their conditions: only in A: MD"):
        compare_interference(a, read_predictions(raw[raw["perturbation"] == "clean"]))
    regolded = raw.assign(gold=np.where(raw["id"] == "c1-2", "purple", raw["gold"]))
    with pytest.raises(RunsDifferError, match="gold answer of 1 items .*'c1-2'"):
        compare_interference(a, read_predictions(regolded))
    # the command: paired lines, and a one-line refusal (exit 2) that writes nothing
    raw.to_csv(tmp_path / "a.csv", index=False)
    _rerun(np.random.default_rng(7), raw, {"MD": 0.0}).to_csv(tmp_path / "b.csv", index=False)
    raw[raw["id"] != "c0-0"].to_csv(tmp_path / "short.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                 "--json", str(tmp_path / "cmp.json"), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "MD: flip rate" in out and "diff=" in out and "p=" in out
    assert json.loads((tmp_path / "cmp.json").read_text())["names"] == ["a.csv", "b.csv"]
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "short.csv"),
                 "--json", str(tmp_path / "no.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: runs differ in their items")
    assert not (tmp_path / "no.json").exists()


def _draw_table(rng: np.random.Generator, clusters: int, size: int, rates: list[np.ndarray]
                ) -> pd.DataFrame:
    """Items answer clean ``red`` (gold red); under MD draw r item i flips to ``blue``
    with probability ``rates[r][i]``; one row per item, draw and condition."""
    rows = []
    for r, rate in enumerate(rates):
        for i in range(clusters * size):
            item, cluster = f"c{i // size}-{i % size}", f"c{i // size}"
            rows.append((item, "clean", r, "red", "red", cluster))
            rows.append((item, "MD", r, "blue" if rng.random() < rate[i] else "red", "red",
                         cluster))
    frame = pd.DataFrame(rows, columns=["id", "perturbation", "draw", "answer", "gold",
                                        "cluster"])
    return read_predictions(frame)


def test_a_second_draw_enters_the_estimate_and_the_interval() -> None:
    from modprobe.stats import mean_interval

    # Draw 0 flips exactly 3 of 8 items in every cluster (rate 0.375, the same in every
    # cluster); a second seed flips other items (rate 0.2, independent per item, as the
    # perturbations are seeded per item). The estimate is the draw average, and the
    # interval is the cluster interval of each item's draw average, whose spread holds
    # the items on which the two draws disagree.
    rng = np.random.default_rng(11)
    first = np.array([1.0 if i % 8 < 3 else 0.0 for i in range(96)])
    table = _draw_table(rng, 12, 8, [first, np.full(96, 0.2)])
    one = analyze_interference(table[table["draw"] == 0], cluster="cluster", n_bootstrap=500)
    assert one.condition("MD").delta.estimate == 0.375 and one.n_draws == 1
    both = analyze_interference(table, cluster="cluster", n_bootstrap=500)
    md = both.condition("MD").delta
    per_draw = both.per_draw[both.per_draw["perturbation"] == "MD"].set_index("draw")["delta"]
    assert per_draw[0] == 0.375 and per_draw[1] != 0.375
    assert md.estimate == pytest.approx(per_draw.mean()) and md.n == 96 and both.n_draws == 2
    flips = both.per_item[both.per_item["perturbation"] == "MD"]
    averaged = flips.groupby("id", sort=False).agg(f=("flipped", "mean"), c=("cluster", "first"))
    assert (averaged["f"] == 0.5).sum() > 10         # the draws disagree on these items
    expected = mean_interval(averaged["f"].to_numpy(), averaged["c"].to_numpy(), kind="rate",
                             n_bootstrap=500)
    assert (md.low, md.high) == (expected.low, expected.high)
    assert (md.low, md.high) != (one.condition("MD").delta.low, one.condition("MD").delta.high)
    assert any("2 perturbation draws per item" in n for n in both.notes)


@pytest.mark.slow
def test_draw_averaged_intervals_cover_the_flip_rate_over_draws() -> None:
    # Item flip probabilities vary by cluster (Beta), draws are independent per item: the
    # interval over draw averages covers the mean probability; pooling every (item, draw)
    # answer as an independent item does not.
    rng = np.random.default_rng(12)
    hits = naive_hits = 0
    reps = 120
    for _ in range(reps):
        p = np.repeat(rng.beta(1.0, 3.0, size=12), 8)        # 12 clusters of 8, mean 0.25
        table = _draw_table(rng, 12, 8, [p] * 3)
        report = analyze_interference(table, cluster="cluster", n_bootstrap=400,
                                      seed=int(rng.integers(1 << 30)))
        delta = report.condition("MD").delta
        hits += delta.low <= 0.25 <= delta.high
        pooled = table.assign(id=table["id"] + "/" + table["draw"].astype(str)).drop(
            columns="draw")
        naive = analyze_interference(pooled, cluster=None).condition("MD").delta
        naive_hits += naive.low <= 0.25 <= naive.high
    assert hits / reps >= 0.88, hits / reps
    assert naive_hits / reps < hits / reps - 0.15, (naive_hits / reps, hits / reps)
