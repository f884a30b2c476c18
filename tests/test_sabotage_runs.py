"""modprobe.analysis.sabotage.runs: agents from study run folders (planted and real)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modprobe.analysis.sabotage.analysis import analyze_sabotage
from modprobe.analysis.sabotage.input import SabotageInputError
from modprobe.analysis.sabotage.runs import load_agents
from modprobe.io import write_csv, write_json
from modprobe.study.runfolder import read_table

CANDIDATES = ["blue", "green", "red"]
#: item -> group, answers, and per condition the final probabilities of blue, green, red
PLANTED = {
    "c1": ("conflict", "red", "blue", {"vision": (0.05, 0.05, 0.80), "text": (0.60, 0.10, 0.10),
                                      "multi": (0.70, 0.00, 0.20)}),
    "t1": ("text_irrelevant", "green", "blue", {"vision": (0.10, 0.50, 0.20),
                                               "text": (0.30, 0.30, 0.30),
                                               "multi": (0.10, 0.45, 0.05)}),
    "i1": ("image_irrelevant", "red", "green", {"vision": (0.20, 0.20, 0.40),
                                               "text": (0.01, 0.97, 0.01),
                                               "multi": (0.02, 0.90, 0.03)}),
}


def _planted_run(folder: Path, with_candidates: bool = True,
                 ids: dict[str, str] | None = None,
                 clusters: dict[str, str] | None = None) -> Path:
    """``ids`` and ``clusters`` rename items and their clusters (default: ``c1``, ``g-c1``)."""
    items, cands, layers = [], [], []
    for key, (group, a_v, a_t, probs) in PLANTED.items():
        item = (ids or {}).get(key, key)
        items.append({"id": item, "group": group, "answer_vision": a_v, "answer_text": a_t,
                      "cluster": (clusters or {}).get(key, f"g-{key}")})
        for condition, p in probs.items():
            layer_row = {"id": item, "condition": condition}
            for label, prob in zip(CANDIDATES, p):
                cands.append({"id": item, "condition": condition, "candidate": label,
                              "logit": float(np.log(prob + 1e-9)), "prob": prob})
                layer_row[f"prob_{label}"] = prob
            for layer in (0, 1):  # layer 0 is noise; the last layer is the model's output
                layers.append({**layer_row, "layer": layer} if layer else
                              {**{k: (0.33 if k.startswith("prob_") else v)
                                  for k, v in layer_row.items()}, "layer": 0})
    write_json(folder / "manifest.json", {"conditions": ["vision", "text", "multi"],
                                          "options": {"model": "planted"}})
    write_csv(folder / "items.csv", pd.DataFrame(items))
    write_csv(folder / "layers.csv", pd.DataFrame(layers))
    if with_candidates:
        write_csv(folder / "candidates.csv", pd.DataFrame(cands))
    return folder


def test_study_agents_rank_candidates_and_take_gold_by_group(tmp_path: Path) -> None:
    outputs = load_agents(_planted_run(tmp_path))
    assert outputs.agents == ["vision", "text", "joint"]
    top = outputs.table[outputs.table["rank"] == 1].set_index(["item", "agent"])
    assert top.loc[("c1", "vision"), "label"] == "red"
    assert top.loc[("c1", "text"), "label"] == "blue"
    assert top.loc[("c1", "joint"), "label"] == "blue"
    # renormalised over the candidates: 0.80 / 0.90
    assert top.loc[("c1", "vision"), "score"] == pytest.approx(0.8 / 0.9)
    # a three-way tie ranks alphabetically
    assert top.loc[("t1", "text"), "label"] == "blue"
    # gold: image color on conflict and text_irrelevant, the text's on image_irrelevant
    assert top.loc[("c1", "vision"), "gold"] == "red"
    assert top.loc[("t1", "vision"), "gold"] == "green"
    assert top.loc[("i1", "vision"), "gold"] == "green"
    assert set(outputs.table["cluster"]) == {"g-c1", "g-t1", "g-i1"}
    assert any("mean probability on other tokens" in n for n in outputs.notes)

    report = analyze_sabotage(outputs, n_bootstrap=50)
    per = report.per_agent.set_index(["item", "agent"])
    # c1: text says blue at 0.6/0.8 = 0.75 >= tau on a red item; the fusion of
    # vision (red 0.89) and text (blue 0.75) keeps red; the joint answer is blue
    assert per.loc[("c1", "text"), "potential_sabotage"] == 1
    assert per.loc[("c1", "text"), "successful_sabotage"] == 0
    assert per.loc[("c1", "text"), "wrong_agent_joint"] == 1
    assert report.items.set_index("item").loc["c1", "fused_top1"] == "red"
    groups = report.summary()["groups"]
    assert groups["conflict/text"]["potential_sabotage"]["count"] == 1
    assert groups["image_irrelevant/vision"]["accuracy"]["count"] == 0


def test_numeric_looking_ids_and_clusters_stay_text(tmp_path: Path) -> None:
    # pandas alone would read "0001" and "1" as the number 1 and the clusters as ints
    outputs = load_agents(_planted_run(tmp_path, ids={"c1": "0001", "t1": "1"},
                                       clusters={"c1": "01", "t1": "2", "i1": "3"}))
    assert set(outputs.table["item"]) == {"0001", "1", "i1"}
    assert set(outputs.table["cluster"]) == {"01", "2", "3"}
    top = outputs.table[outputs.table["rank"] == 1].set_index(["item", "agent"])
    assert top.loc[("0001", "vision"), "label"] == "red"
    assert top.loc[("1", "vision"), "label"] == "green"
    assert len(top) == 9


def test_vocab_scores_and_gold_text(tmp_path: Path) -> None:
    outputs = load_agents(_planted_run(tmp_path), scores="vocab", gold="text")
    top = outputs.table[outputs.table["rank"] == 1].set_index(["item", "agent"])
    assert top.loc[("c1", "vision"), "score"] == pytest.approx(0.80)
    assert top.loc[("c1", "vision"), "gold"] == "blue"


def test_older_runs_fall_back_on_the_last_lens_layer(tmp_path: Path) -> None:
    new = load_agents(_planted_run(tmp_path / "new"))
    old = load_agents(_planted_run(tmp_path / "old", with_candidates=False))
    columns = ["item", "agent", "rank", "label", "score", "gold"]
    pd.testing.assert_frame_equal(new.table[columns], old.table[columns])
    assert any("older modprobe" in n for n in old.notes)


def test_unknown_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(SabotageInputError, match="not a run folder modprobe knows"):
        load_agents(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_agents(tmp_path / "missing.jsonl")


def test_cli_on_a_real_study_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.data import generate_colors
    from modprobe.sabotage import main
    from modprobe.study import StudyConfig, run_study
    from modprobe.testing import build_tiny

    data = tmp_path / "data"
    generate_colors(data, groups=1, seed=3, variant="lowres")
    model = build_tiny("llava", tmp_path / "model", seed=0)
    run_study(StudyConfig(model=str(model), data=str(data), out=str(tmp_path / "run"),
                          batch_size=6, limit=12, n_bootstrap=20, figures=False),
              progress=False)
    assert main([str(tmp_path / "run"), "--out", str(tmp_path / "report"),
                 "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "agents: vision, text, joint; fused: vision, text" in printed
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["n_items"] == 12 and summary["confidence_scales"]["vision"] == "0-1"
    # each agent's top label is the model's own answer whenever that answer is a candidate
    items = read_table(tmp_path / "run" / "items.csv")
    per = read_table(tmp_path / "report" / "per_agent.csv")
    candidates = set(read_table(tmp_path / "run" / "candidates.csv")["candidate"])
    for condition, agent in (("vision", "vision"), ("text", "text"), ("multi", "joint")):
        mine = per[per["agent"] == agent].set_index("item")["label"]
        answers = items.set_index("id")[f"y_{condition}"]
        known = answers[answers.isin(candidates)]
        assert (mine.loc[known.index] == known).all()


@pytest.mark.parametrize("fmt", ["open", "choice"])
def test_cli_on_a_real_interference_run(fmt: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.data.color_tasks import generate_color_tasks
    from modprobe.sabotage import main
    from modprobe.study.interference import InterferenceConfig, run_interference
    from modprobe.testing import build_tiny

    data = tmp_path / "tasks"
    generate_color_tasks(data, groups=2, seed=0, variant="lowres", fmt=fmt)
    model = build_tiny("llava", tmp_path / "model", seed=0)
    run_interference(InterferenceConfig(model=str(model), data=str(data), out=str(tmp_path / "run"),
                                        perturb=["MD", "FB"], batch_size=8, limit=8,
                                        n_bootstrap=20, figures=False, draws=2),
                     progress=False)
    assert main([str(tmp_path / "run"), "--out", str(tmp_path / "report"),
                 "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "interference run: agents are its conditions" in printed
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    items = read_table(tmp_path / "run" / "items.csv")
    # with perturbation draws each (item, draw) is an item, clustered with its other draws
    items["item"] = items["id"] + "/draw" + items["draw"].astype(str)
    assert summary["n_items"] == items["item"].nunique() == 2 * items["id"].nunique()
    assert set(summary["agents"]) == {"joint"} | (set(items["perturbation"]) - {"clean"})
    # each condition's agent answers what the run read (its top label), when readable
    per = read_table(tmp_path / "report" / "per_agent.csv")
    per["perturbation"] = per["agent"].replace({"joint": "clean"})
    both = per.merge(items, on=["item", "perturbation"])
    assert len(both) == len(items)
    if fmt == "choice":
        assert (both["label"] == both["category"].str.casefold()).all()
        assert np.allclose(both["confidence"], both["p_top1"])
    assert (both["correct_x"] == (both["label"] == both["gold_y"].str.casefold())).all()
