"""modprobe.analysis.sabotage.analysis: planted saboteurs, contributors and fused answers, ties."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modprobe.analysis.sabotage.analysis import analyze_sabotage, fuse
from modprobe.analysis.sabotage.input import SabotageInputError, agent_table, read_agent_jsonl

LABELS = ("anger", "joy", "sadness", "surprise", "neutral")


def _records(lines: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return list(enumerate(lines, start=1))


def planted(n_per_kind: int = 6, percent: bool = True) -> tuple[list[dict[str, Any]],
                                                                 dict[str, Any]]:
    """Agent outputs whose saboteurs, contributors and fused answers are known by design.

    Kinds of item (gold = ``joy``, confidences on the 1-100 scale when ``percent``):

    - ``wins``: text is wrong at 95 (``anger``), vision right at 60: fused top-1 anger,
      text a successful saboteur, vision the one contributor.
    - ``held``: text wrong at 75, vision right at 90: a potential sabotage the fusion
      resists (fused top-1 joy).
    - ``shy``: text wrong at 65 (< tau), vision right at 62: text no saboteur; fused
      ``anger`` (0.65 + 0.19 from the rest of vision's list > 0.62 + 0.175).
    - ``agree``: both right: two contributors, fused joy.
    - ``vision``: vision wrong at 80 (``sadness``), text right at 50: vision sabotages
      successfully.

    The joint agent always answers text's label at 70, so it is a potential saboteur
    wherever text is wrong, and text "sabotages the joint answer" on wins, held, shy.
    """
    scale = 1.0 if percent else 100.0
    kinds = {  # (text label, text conf, vision label, vision conf)
        "wins": ("anger", 95, "joy", 60), "held": ("anger", 75, "joy", 90),
        "shy": ("anger", 65, "joy", 62), "agree": ("joy", 85, "joy", 80),
        "vision": ("joy", 50, "sadness", 80)}
    lines: list[dict[str, Any]] = []
    truth: dict[str, Any] = defaultdict(set)
    for kind, (t_label, t_conf, v_label, v_conf) in kinds.items():
        for i in range(n_per_kind):
            item = f"{kind}-{i}"
            for agent, label, conf in (("text", t_label, t_conf), ("vision", v_label, v_conf)):
                rest = [lab for lab in LABELS if lab != label][:2]  # two more labels, ranked
                rest_conf = (100 - conf) / 2
                lines.append({"item": item, "agent": agent, "labels": [label, *rest],
                              "confidence": [conf / scale, rest_conf / scale,
                                             rest_conf / scale],
                              "gold": "joy", "cluster": f"c{i % 3}"})
            lines.append({"item": item, "agent": "joint", "labels": [t_label],
                          "confidence": 70 / scale, "gold": "joy", "cluster": f"c{i % 3}"})
            truth["kind"].add(kind)
            truth[f"{kind}:items"].add(item)
    return lines, truth


def test_planted_saboteurs_contributors_and_fused_answers_are_recovered_exactly() -> None:
    lines, _ = planted()
    outputs = agent_table(_records(lines))
    assert outputs.scales == {"text": "1-100", "vision": "1-100", "joint": "1-100"}
    report = analyze_sabotage(outputs, n_bootstrap=200)
    items = report.items.set_index("item")
    kind = items.index.str.split("-").str[0]
    expected_top1 = {"wins": "anger", "held": "joy", "shy": "anger", "agree": "joy",
                     "vision": "sadness"}
    assert (items["fused_top1"] == kind.map(expected_top1)).all()
    expected_saboteurs = {"wins": "text,joint", "held": "text,joint", "shy": "joint",
                          "agree": "", "vision": "vision"}
    assert (items["saboteurs"] == kind.map(expected_saboteurs)).all()
    expected_success = {"wins": "text", "held": "", "shy": "", "agree": "", "vision": "vision"}
    assert (items["successful_saboteurs"] == kind.map(expected_success)).all()
    expected_correct = {"wins": "vision", "held": "vision", "shy": "vision",
                        "agree": "text,vision", "vision": "text"}
    assert (items["correct_agents"] == kind.map(expected_correct)).all()
    # a contributor's removal loses the right fused answer: only vision on held (on agree
    # either agent alone is still right; elsewhere the fusion is wrong anyway)
    expected_contrib = {"wins": "", "held": "vision", "shy": "", "agree": "", "vision": ""}
    assert (items["contributors"] == kind.map(expected_contrib)).all()

    summary = report.summary()
    text, vision, joint = (summary["agents"][a] for a in ("text", "vision", "joint"))
    n = 30
    assert text["potential_sabotage"]["count"] == 12 and text["potential_sabotage"]["n"] == n
    assert text["successful_sabotage"]["count"] == 6
    assert text["wrong_agent_fused"]["count"] == 6
    assert text["wrong_agent_joint"]["count"] == 12  # wins and held: joint says anger
    assert text["accuracy"]["count"] == 12 and text["contributions"]["count"] == 0
    assert vision["potential_sabotage"]["count"] == 6
    assert vision["successful_sabotage"]["count"] == 6
    assert vision["accuracy"]["count"] == 24 and vision["contributions"]["count"] == 6
    assert joint["potential_sabotage"]["count"] == 18
    assert joint["successful_sabotage"]["count"] is None or joint["successful_sabotage"][
        "rate"] is None  # joint is not fused: undefined, not zero
    assert math.isclose(text["potential_sabotage"]["rate"], 12 / n)
    # fusion: top-1 right on held, agree (12 of 30); joy is 2nd on wins, shy, vision
    assert math.isclose(summary["fusion"]["top1"], 12 / n)
    assert summary["fusion"]["top3"] == 1.0 and summary["fusion"]["top5"] == 1.0
    assert math.isclose(joint["top1"], 12 / n) and math.isclose(joint["top5"], 12 / n)
    # cluster labels present: every interval is over the 3 clusters (rates of 0/1 values:
    # the Korn-Graubard interval)
    rates = report.rates[report.rates["n"] > 0]
    assert (rates["method"] == "korn-graubard").all() and (rates["n_clusters"] == 3).all()
    # the sabotage table lists every potential sabotage, successful ones first
    assert len(report.sabotaged) == 12 + 6 + 18
    assert report.sabotaged["successful_sabotage"].iloc[:12].eq(1).all()


def test_scales_are_equivalent_and_reported() -> None:
    percent = analyze_sabotage(agent_table(_records(planted()[0])), n_bootstrap=100)
    unit_outputs = agent_table(_records(planted(percent=False)[0]))
    assert set(unit_outputs.scales.values()) == {"0-1"}
    unit = analyze_sabotage(unit_outputs, n_bootstrap=100)
    pd.testing.assert_frame_equal(percent.items, unit.items)
    assert "confidence scale found: text 1-100" in "\n".join(percent.summary_lines())


def _brute_force_fusion(lines: list[dict[str, Any]], fused_agents: set[str],
                        weights: str) -> dict[str, list[str]]:
    """Fusion written out with dicts, for comparison with the vectorised one."""
    scores: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    best: dict[str, dict[str, int]] = defaultdict(dict)
    count: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in lines:
        if rec["agent"] not in fused_agents:
            continue
        conf = rec["confidence"]
        w = rec["quality"] if weights == "quality" else 1.0
        for rank, label in enumerate(rec["labels"], start=1):
            if isinstance(conf, list):
                s = conf[rank - 1]
            else:
                s = conf if rank == 1 else (1 - conf) / (len(rec["labels"]) - 1)
            scores[rec["item"]][label] += w * s
            best[rec["item"]][label] = min(best[rec["item"]].get(label, 99), rank)
            count[rec["item"]][label] += 1
    out = {}
    for item, sc in scores.items():
        total = sum(sc.values())
        out[item] = sorted(sc, key=lambda lab: (-round(sc[lab] / total, 12), best[item][lab],
                                                -count[item][lab], lab))
    return out


@pytest.mark.parametrize("weights", ["equal", "quality"])
def test_fusion_matches_a_brute_force_reference_on_random_outputs(weights: str) -> None:
    rng = np.random.default_rng(7)
    lines = []
    for i in range(80):
        for agent in ("audio", "text", "vision", "joint"):
            k = int(rng.integers(1, 5))
            labels = list(rng.choice(LABELS, size=k, replace=False))
            if rng.random() < 0.5:
                conf = sorted(np.round(rng.random(k), 2).tolist(), reverse=True)
            else:
                conf = float(np.round(rng.random(), 2))
            lines.append({"item": f"i{i}", "agent": agent, "labels": labels,
                          "confidence": conf, "gold": str(rng.choice(LABELS)),
                          "quality": float(np.round(rng.uniform(0.1, 1), 2))})
    # gold must agree across an item's lines
    for rec in lines:
        rec["gold"] = lines[4 * int(rec["item"][1:])]["gold"]
    outputs = agent_table(_records(lines))
    fused = fuse(outputs.table, weights=weights)
    reference = _brute_force_fusion(lines, {"audio", "text", "vision"}, weights)
    got = fused.sort_values(["item", "rank"]).groupby("item")["label"].agg(list).to_dict()
    assert got == reference
    np.testing.assert_allclose(fused.groupby("item")["p"].sum(), 1.0)


def test_tie_breaking_best_rank_then_agent_count_then_label() -> None:
    lines = [
        # t1: p(b) = p(a); b was ranked first by an agent, a only second
        {"item": "t1", "agent": "x", "labels": ["b", "a"], "confidence": [0.5, 0.5],
         "gold": "a"},
        # t2: equal p and equal best rank; c is listed by two agents, d by one
        {"item": "t2", "agent": "x", "labels": ["d", "c"], "confidence": [0.6, 0.3],
         "gold": "c"},
        {"item": "t2", "agent": "y", "labels": ["c"], "confidence": [0.3], "gold": "c"},
        # t3: everything equal: alphabetical
        {"item": "t3", "agent": "x", "labels": ["zebra"], "confidence": [0.4], "gold": "apple"},
        {"item": "t3", "agent": "y", "labels": ["apple"], "confidence": [0.4], "gold": "apple"},
        # t4: every score 0: uniform p, then the same rules (best rank, then label)
        {"item": "t4", "agent": "x", "labels": ["q", "p"], "confidence": [0, 0], "gold": "p"},
        # t5: a float-summation near-tie (0.1 + 0.2 vs 0.3) is a tie
        {"item": "t5", "agent": "x", "labels": ["m", "k"], "confidence": [0.3, 0.2],
         "gold": "k"},
        {"item": "t5", "agent": "y", "labels": ["k"], "confidence": [0.1], "gold": "k"},
    ]
    fused = fuse(agent_table(_records(lines)).table)
    order = fused.sort_values(["item", "rank"]).groupby("item")["label"].agg(list).to_dict()
    assert order["t1"] == ["b", "a"]
    assert order["t2"] == ["c", "d"]  # p(c) = 0.6 = p(d): c listed by two agents
    assert order["t3"] == ["apple", "zebra"]
    assert order["t4"] == ["q", "p"]
    assert order["t5"] == ["k", "m"]  # both best rank 1; k listed by two agents


def test_one_confidence_spreads_the_rest_over_the_other_labels() -> None:
    outputs = agent_table(_records([{"item": "a", "agent": "x", "labels": ["u", "v", "w"],
                                     "confidence": 80, "gold": "u"}]))
    np.testing.assert_allclose(outputs.table["score"], [0.8, 0.1, 0.1])


def test_summary_json_has_no_nan(tmp_path: Path) -> None:
    from modprobe.analysis.sabotage.report import write_report

    lines, _ = planted(n_per_kind=2)
    lines = [{k: v for k, v in rec.items() if k != "cluster"} for rec in lines]
    report = analyze_sabotage(agent_table(_records(lines)), n_bootstrap=50)
    write_report(report, tmp_path / "out", figures=False)

    def refuse(constant: str) -> None:
        raise AssertionError(f"summary.json holds {constant}")

    summary = json.loads((tmp_path / "out" / "summary.json").read_text(),
                         parse_constant=refuse)
    for agent in ("text", "vision", "joint"):
        for key in ("potential_sabotage", "successful_sabotage", "contributions"):
            assert {"count", "n", "rate", "ci"} <= set(summary["agents"][agent][key])
    assert {"top1", "top3", "top5"} <= set(summary["fusion"])
    # no cluster labels, one answer per item and agent: Wilson intervals
    rates = pd.read_csv(tmp_path / "out" / "rates.csv")
    assert set(rates.loc[(rates["level"] == "agent") & (rates["n"] > 0), "method"]) == {"wilson"}


def test_quality_weights_change_the_fused_answer() -> None:
    lines = [{"item": "a", "agent": "x", "labels": ["u"], "confidence": 0.9, "quality": 0.2,
              "gold": "v"},
             {"item": "a", "agent": "y", "labels": ["v"], "confidence": 0.6, "quality": 0.9,
              "gold": "v"}]
    table = agent_table(_records(lines)).table
    assert fuse(table, "equal").iloc[0]["label"] == "u"
    assert fuse(table, "quality").iloc[0]["label"] == "v"
    with pytest.raises(ValueError, match="line 1, field 'quality'"):
        fuse(agent_table(_records([{**lines[0], "quality": None}, lines[1]])).table, "quality")


BAD = [
    ({"labels": []}, "line 2, field 'labels': the agent gave no labels"),
    ({"confidence": 150}, "line 2, field 'confidence': 150 is outside any known scale"),
    ({"confidence": -0.2}, "line 2, field 'confidence': -0.2 is outside any known scale"),
    ({"gold": None}, "line 2, field 'gold': missing"),
    ({"gold": ""}, "line 2, field 'gold': missing or empty"),
    ({"item": "a"}, "line 2, fields 'item', 'agent': a second line for item 'a' and agent 'x'"),
    ({"confidence": [0.2, 0.9]}, "line 2, field 'confidence': increases"),
    ({"confidence": [0.9]}, "line 2, field 'confidence': 1 values for 2 labels"),
    ({"labels": ["u", " U."]}, "line 2, field 'labels': 'u' is listed twice"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[1] for _, m in BAD])
def test_bad_input_names_line_and_field(change: dict[str, Any], message: str,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.sabotage import main

    good = {"item": "a", "agent": "x", "labels": ["u", "v"], "confidence": [0.9, 0.1],
            "gold": "u"}
    second = {**good, "item": "b", **change}
    if change.get("gold", "x") is None:
        second.pop("gold")
    path = tmp_path / "agents.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, second)) + "\n")
    with pytest.raises(SabotageInputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_agent_jsonl(path)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and str(path) in err
    assert not (tmp_path / "out").exists(), "nothing may be written on bad input"


def test_mixed_scale_within_an_agent_and_forced_scale_errors(tmp_path: Path) -> None:
    lines = [{"item": "a", "agent": "x", "labels": ["u"], "confidence": 90, "gold": "u"},
             {"item": "b", "agent": "x", "labels": ["u"], "confidence": 0.9, "gold": "u"}]
    outputs = agent_table(_records(lines))
    assert outputs.scales == {"x": "1-100"}  # 90 forces the 1-100 scale for the whole agent
    assert any("mixed scales? pass --scale" in n and "line 2" in n for n in outputs.notes)
    assert not agent_table(_records(lines[:1])).notes
    with pytest.raises(SabotageInputError, match="line 1, field 'confidence': outside the 0-1"):
        agent_table(_records(lines), scale="unit")


def test_cli_writes_report_and_refuses_to_overwrite(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.sabotage import main

    path = tmp_path / "agents.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in planted(n_per_kind=2)[0]) + "\n")
    out = tmp_path / "report"
    assert main([str(path), "--out", str(out), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "fusion: top1=" in printed and "confidence scale found: text 1-100" in printed
    assert {p.name for p in (out / "figures").iterdir()} == {
        "reliability.png", "sabotage_bars.png", "topk_coverage.png"}
    before = (out / "summary.json").read_bytes()
    assert main([str(path), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == before


def test_figures_script_redraws_from_a_report_folder(tmp_path: Path) -> None:
    import importlib.util

    from modprobe.analysis.sabotage.report import write_report

    script = Path(__file__).parent.parent / "figures" / "sabotage.py"
    spec = importlib.util.spec_from_file_location("figures_sabotage", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = planted(n_per_kind=2)[0]
    for rec in lines:  # two text agents of one modality: the per-modality bars appear too
        if rec["agent"] == "text":
            rec["modality"] = "language"
    lines += [{**rec, "agent": "text-2"} for rec in lines if rec["agent"] == "text"]
    write_report(analyze_sabotage(agent_table(_records(lines)), n_bootstrap=50),
                 tmp_path / "report", figures=False)
    assert module.main([str(tmp_path / "report"), "--out", str(tmp_path / "figs")]) == 0
    written = {p.name: p.stat().st_size for p in (tmp_path / "figs").iterdir()}
    assert set(written) == {"reliability.png", "sabotage_bars.png",
                            "sabotage_bars_modality.png", "topk_coverage.png"}
    assert min(written.values()) > 10_000  # a drawn figure, not an empty canvas
    assert module.main([str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def _clustered_outputs(rng: np.random.Generator, n_clusters: int = 20, per: int = 10,
                       mean: float = 0.3, concentration: float = 4.0) -> list[tuple[int, dict]]:
    """Text agent confidently wrong with a per-cluster probability ~ Beta(mean, conc)."""
    lines = []
    for c in range(n_clusters):
        p = rng.beta(mean * concentration, (1 - mean) * concentration)
        for i in range(per):
            wrong = bool(rng.random() < p)
            for agent, labels, conf in (("text", ["b", "a"] if wrong else ["a", "b"], [0.9, 0.1]),
                                        ("vision", ["a"], 0.6)):
                lines.append({"item": f"c{c}-{i}", "agent": agent, "labels": labels,
                              "confidence": conf, "gold": "a", "cluster": f"c{c}"})
    return _records(lines)


@pytest.mark.slow
def test_rate_intervals_cover_a_planted_clustered_rate() -> None:
    """The potential-sabotage interval resamples clusters: it covers the planted mean rate
    near the nominal 95%, where an interval treating items as independent would not."""
    from modprobe.stats import mean_interval

    rng = np.random.default_rng(12)
    covered = covered_independent = 0
    replicates = 100
    for r in range(replicates):
        report = analyze_sabotage(agent_table(_clustered_outputs(rng)), n_bootstrap=400, seed=r)
        row = report.rate("text", "potential_sabotage")
        covered += row["low"] <= 0.3 <= row["high"]
        text = report.per_agent[report.per_agent["agent"] == "text"]
        naive = mean_interval(text["potential_sabotage"])  # Wilson over 200 "independent" items
        covered_independent += naive.low <= 0.3 <= naive.high
    assert 0.87 <= covered / replicates <= 0.99
    assert covered_independent / replicates < 0.87


def _three_agents(answers: dict[str, tuple[str, float]], gold: str = "joy",
                  item: str = "q") -> list[dict[str, Any]]:
    return [{"item": item, "agent": agent, "labels": [label], "confidence": conf,
             "gold": gold} for agent, (label, conf) in answers.items()]


def test_saboteurs_and_contributors_are_counterfactual_as_in_paper_002() -> None:
    # A unanimous error: removing any one wrong agent leaves the others' wrong answer,
    # so nobody sabotaged the fusion (the looser count names all three).
    lines = _three_agents({"audio": ("anger", 0.9), "text": ("anger", 0.9),
                           "vision": ("anger", 0.9)}, item="unanimous")
    # One confident wrong agent overrides two correct, less sure ones: anger 0.95 beats
    # joy 0.4 + 0.4; without audio the fusion says joy. One saboteur; the two correct
    # agents lost, so neither contributed.
    lines += _three_agents({"audio": ("anger", 0.95), "text": ("joy", 0.4),
                            "vision": ("joy", 0.4)}, item="override")
    # Two sure correct agents outvote a sure wrong one, and each is needed (joy 0.9 alone
    # loses to anger 0.95): two contributors, the wrong agent a potential saboteur only.
    lines += _three_agents({"audio": ("anger", 0.95), "text": ("joy", 0.9),
                            "vision": ("joy", 0.9)}, item="needed")
    # Three correct agents: no single one is needed, so no contributor.
    lines += _three_agents({"audio": ("joy", 0.8), "text": ("joy", 0.8),
                            "vision": ("joy", 0.8)}, item="spare")
    report = analyze_sabotage(agent_table(_records(lines)), n_bootstrap=50)
    items = report.items.set_index("item")
    assert items.loc["unanimous", "successful_saboteurs"] == ""
    assert items.loc["unanimous", "wrong_agents_fused"] == "audio,text,vision"
    assert items.loc["override", "successful_saboteurs"] == "audio"
    assert items.loc["override", "contributors"] == ""
    assert items.loc["needed", "successful_saboteurs"] == ""
    assert items.loc["needed", "saboteurs"] == "audio"
    assert items.loc["needed", "contributors"] == "text,vision"
    assert items.loc["spare", "contributors"] == ""
    assert items.loc["spare", "correct_agents"] == "audio,text,vision"
    per = report.per_agent.set_index(["item", "agent"])
    assert per.loc[("override", "text"), "top1_without"] == "anger"
    assert per.loc[("override", "audio"), "top1_without"] == "joy"
    summary = report.summary()["agents"]
    assert summary["audio"]["successful_sabotage"]["count"] == 1
    assert summary["audio"]["wrong_agent_fused"]["count"] == 2
    assert summary["text"]["successful_sabotage"]["count"] == 0
    assert summary["text"]["contributions"]["count"] == 1
    assert summary["text"]["accuracy"]["count"] == 3


def test_an_only_agent_contributes_when_right_and_never_sabotages() -> None:
    # Without the item's only fused agent there is no answer: right, it contributed;
    # wrong, removing it gives no gold answer either.
    lines = [{"item": "a", "agent": "text", "labels": ["joy"], "confidence": 0.9,
              "gold": "joy"},
             {"item": "b", "agent": "text", "labels": ["anger"], "confidence": 0.9,
              "gold": "joy"},
             {"item": "b", "agent": "vision", "labels": ["anger"], "confidence": 0.9,
              "gold": "joy"}]
    report = analyze_sabotage(agent_table(_records(lines)), n_bootstrap=50)
    items = report.items.set_index("item")
    assert items.loc["a", "contributors"] == "text"
    assert items.loc["b", "successful_saboteurs"] == ""
    per = report.per_agent.set_index(["item", "agent"])
    assert per.loc[("a", "text"), "top1_without"] is None
