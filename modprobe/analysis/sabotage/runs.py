"""Agents from modprobe's own run folders (tables in, no model code).

Study runs (``python -m modprobe.layers``) and interference runs
(``python -m modprobe.interference``, see `interference_records`) are recognised by their
manifest.

A study run (``python -m modprobe.layers``) answers every item under three conditions;
each condition is an agent:

=============  ===========  ===================================
condition      agent        modality
=============  ===========  ===================================
``vision``     ``vision``   image + question
``text``       ``text``     description + question
``multi``      ``joint``    image + description + question
=============  ===========  ===================================

An agent's ranked labels are the candidate answers ordered by the model's final
probability under that condition (``candidates.csv``; runs made before that table
existed fall back on the last layer of ``layers.csv``, the same logits); equal
probabilities rank alphabetically. Its
confidences are those probabilities, renormalised over the candidates
(``scores="candidates"``, the default: the label set is the closed set of answers), or
the full-vocabulary probabilities (``scores="vocab"``: the mass on tokens that are no
candidate counts against the confidence). Confidences are read from the model's
probabilities, not elicited (the paper's self-assessment prompt is for models that can
answer it: `modprobe.analysis.sabotage.replies`).

The gold label of an item (``gold="auto"``): the image's color for ``conflict`` and
``text_irrelevant`` items (the description is a claim, or about a shape not drawn), the
description's for ``image_irrelevant`` items (the question asks about a shape not
drawn). ``gold="vision"`` or ``"text"`` takes one answer for every item.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.sabotage.input import (
    JOINT,
    AgentOutputs,
    SabotageInputError,
    agent_table,
    read_agent_jsonl,
)
from modprobe.analysis.table import TEXT_COLUMNS, read_table
from modprobe.io import table_path

#: Condition of a study run -> agent name.
STUDY_AGENTS = {"vision": "vision", "text": "text", "multi": JOINT}
GOLDS = ("auto", "vision", "text")
SCORES = ("candidates", "vocab")
#: Gold column by item group under ``gold="auto"`` (other groups: the image's answer).
AUTO_GOLD = {"conflict": "answer_vision", "text_irrelevant": "answer_vision",
             "image_irrelevant": "answer_text"}


#: Interference items.csv columns read as text besides the runners' own (`TEXT_COLUMNS`).
INTERFERENCE_TEXT = (*TEXT_COLUMNS, "gold", "category", "modality", "relevant")


def _read(path: Path, text: tuple[str, ...] = TEXT_COLUMNS) -> pd.DataFrame:
    """A table a runner wrote (the one table reader, no prediction-table validation)."""
    return read_table(path, validate=False, text=text)


def _final_scores(run: Path, notes: list[str]) -> pd.DataFrame:
    """``id, condition, candidate, prob`` of the model's final distribution."""
    if table_path(run, "candidates").is_file():
        return _read(run / "candidates.csv")[["id", "condition", "candidate", "prob"]]
    if not table_path(run, "layers").is_file():
        raise SabotageInputError(str(run), [("the run has neither candidates.csv nor layers.csv; "
                                            "is the run finished?")])
    layers = _read(run / "layers.csv")
    last = layers[layers["layer"] == layers["layer"].max()]
    probs = [c for c in last.columns if c.startswith("prob_")]
    if not probs:
        raise SabotageInputError(str(run), [("layers.csv has no prob_<candidate> columns: the "
                                            "run scored no candidate answers")])
    notes.append("no candidates.csv (a run from an older modprobe): candidate probabilities "
                 "read from the last lens layer of layers.csv")
    long = last.melt(id_vars=["id", "condition"], value_vars=probs, var_name="candidate",
                     value_name="prob")
    long["candidate"] = long["candidate"].str.slice(len("prob_"))
    return long


def study_records(run: str | Path, gold: str = "auto",
                  scores: str = "candidates") -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The JSONL records (line = row of ``items.csv``) of a study run's three agents.

    Args:
        run: The study run folder.
        gold: Which answer is right: ``auto`` (by item group, see the module docstring),
            ``vision`` or ``text``.
        scores: ``candidates`` (probabilities renormalised over the candidate answers)
            or ``vocab`` (full-vocabulary probabilities).

    Returns:
        ``(records, notes)``.
    """
    if gold not in GOLDS:
        raise ValueError(f"gold must be one of {', '.join(GOLDS)}, got {gold!r}")
    if scores not in SCORES:
        raise ValueError(f"scores must be one of {', '.join(SCORES)}, got {scores!r}")
    run = Path(run)
    notes: list[str] = []
    items = _read(run / "items.csv")
    final = _final_scores(run, notes)
    final = final[final["condition"].isin(list(STUDY_AGENTS))]
    wide = final.pivot_table(index=["id", "condition"], columns="candidate", values="prob",
                             sort=False)
    wide = wide[sorted(wide.columns, key=str)]
    labels = np.asarray(wide.columns, dtype=object)
    probs = wide.to_numpy(np.float64)
    mass = probs.sum(axis=1)
    if scores == "candidates":
        probs = probs / np.where(mass > 0, mass, 1.0)[:, None]
    probs = np.clip(probs, 0.0, 1.0)  # rounding must not push a sum past the 0-1 scale
    outside = pd.Series(1.0 - mass, index=wide.index).groupby(level="condition").mean()
    notes.append("candidate answers: " + ", ".join(map(str, labels)) + "; mean probability "
                 "on other tokens: " + ", ".join(f"{STUDY_AGENTS[c]} {outside[c]:.3f}"
                                                 for c in STUDY_AGENTS if c in outside.index))
    # Best first; equal probabilities in alphabetical order (stable sort).
    order = np.argsort(-probs, axis=1, kind="stable")
    row_of = {key: i for i, key in enumerate(wide.index)}
    records: list[tuple[int, dict[str, Any]]] = []
    for line, item in enumerate(items.itertuples(index=False), start=2):
        group = getattr(item, "group", None)
        column = AUTO_GOLD.get(str(group), "answer_vision") if gold == "auto" \
            else f"answer_{gold}"
        cluster = getattr(item, "cluster", None)
        for condition, agent in STUDY_AGENTS.items():
            i = row_of.get((item.id, condition))
            if i is None:
                continue
            ranked = order[i]
            record: dict[str, Any] = {
                "item": str(item.id), "agent": agent, "modality": agent,
                "labels": [str(x) for x in labels[ranked]],
                "confidence": [float(x) for x in probs[i, ranked]],
                "gold": getattr(item, column)}
            if isinstance(group, str):
                record["group"] = group
            if isinstance(cluster, str) and cluster:
                record["cluster"] = cluster
            records.append((line, record))
    if gold == "auto" and "group" in items.columns and (items["group"] == "conflict").any():
        notes.append("gold: the image's color on conflict and text_irrelevant items, the "
                     "description's on image_irrelevant items (--gold vision|text to change)")
    return records, notes


def _ranked(probs: np.ndarray, labels: np.ndarray, scores: str) -> tuple[list[str], list[float]]:
    """Labels best first (ties alphabetical: ``labels`` are sorted) and their confidences."""
    mass = float(probs.sum())
    if scores == "candidates" and mass > 0:
        probs = probs / mass
    probs = np.clip(probs, 0.0, 1.0)
    order = np.argsort(-probs, kind="stable")
    return [str(x) for x in labels[order]], [float(x) for x in probs[order]]


def interference_records(run: str | Path, scores: str = "candidates"
                         ) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The JSONL records (line = row of ``items.csv``) of an interference run's conditions.

    An interference run has no vision-only or text-only answers: every condition sees
    both modalities. Its agents are its conditions: ``clean`` is the ``joint`` agent, each
    perturbation (``UF``, ``MD``, ``RP``...) an agent whose modality is the one it
    perturbs. A potential sabotage is then a perturbed input that makes the model
    confidently wrong; the fusion pools the perturbed views of an item. Open-answer items
    rank the candidate answers by the last lens layer (the model's own output); multiple-
    choice items give the answer as read (the option, or ``unreadable``) with the model's
    top-1 probability, without a ranking. With perturbation draws, each (item, draw) is an
    item of its own (``id/drawR``), in one cluster with the item's other draws.

    Args:
        run: The interference run folder.
        scores: ``candidates`` or ``vocab``, as in :func:`study_records`.

    Returns:
        ``(records, notes)``: the records as :func:`agent_table` takes them, and what a
        reader should know about how they were made.
    """
    if scores not in SCORES:
        raise ValueError(f"scores must be one of {', '.join(SCORES)}, got {scores!r}")
    run = Path(run)
    notes = [("interference run: agents are its conditions (clean = joint; each perturbation "
             "an agent of the modality it perturbs); no vision-only or text-only answers")]
    items = _read(run / "items.csv", INTERFERENCE_TEXT)
    layers = _read(run / "layers.csv", INTERFERENCE_TEXT)
    last = layers[layers["layer"] == layers["layer"].max()]
    prob_columns = sorted((c for c in last.columns if c.startswith("prob_")), key=str)
    labels = np.asarray([c[len("prob_"):] for c in prob_columns], dtype=object)
    # Runs with perturbation draws: each (item, draw) is an item of its own, clustered
    # with its other draws (by the item's cluster, or the item itself).
    items = items.assign(draw=items["draw"] if "draw" in items.columns else 0)
    last = last.assign(draw=last["draw"] if "draw" in last.columns else 0)
    several = items["draw"].nunique() > 1
    probs = {(str(r[0]), str(r[1]), int(r[2])): np.asarray(r[3:], dtype=np.float64)
             for r in last[["id", "perturbation", "draw", *prob_columns]].itertuples(
                 index=False)}
    records: list[tuple[int, dict[str, Any]]] = []
    n_choice = 0
    for line, row in enumerate(items.itertuples(index=False), start=2):
        condition = str(row.perturbation)
        agent = JOINT if condition == "clean" else condition
        modality = JOINT if condition == "clean" else str(row.modality or condition)
        item = f"{row.id}/draw{row.draw}" if several else str(row.id)
        record: dict[str, Any] = {"item": item, "agent": agent, "modality": modality,
                                  "gold": row.gold, "group": f"{row.relevant}-heavy"}
        if isinstance(getattr(row, "cluster", None), str) and row.cluster:
            record["cluster"] = row.cluster
        elif several:
            record["cluster"] = str(row.id)
        key = (str(row.id), condition, int(row.draw))
        if getattr(row, "format", "open") == "choice" or key not in probs or not len(labels):
            n_choice += 1
            record["labels"] = [str(row.category)]
            record["confidence"] = float(row.p_top1)
        else:
            record["labels"], record["confidence"] = _ranked(probs[key], labels, scores)
        records.append((line, record))
    if several:
        notes.append(f"{items['draw'].nunique()} perturbation draws: each (item, draw) is an "
                     "item (id/drawR); intervals resample clusters, which hold every draw of "
                     "an item")
    if n_choice:
        notes.append(f"{n_choice} of {len(items)} answers are multiple-choice (or had no "
                     "candidate scores): one label each, the answer as read, confidence = "
                     "the top-1 token probability; their top-k is their top-1")
    return records, notes


def run_kind(folder: Path) -> str | None:
    """``"study"`` or ``"interference"`` for a run folder, None when not recognised."""
    if table_path(folder, "items").is_file() and (folder / "manifest.json").is_file():
        path = folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            problem = (f"not a readable JSON manifest ({err}); the run folder is damaged: "
                       "rerun the study into a new --out, or give a JSONL of agent outputs")
            raise SabotageInputError(str(path), [problem]) from None
        if not isinstance(manifest, dict):
            problem = ("holds no JSON object; the run folder is damaged: rerun the study into "
                       "a new --out")
            raise SabotageInputError(str(path), [problem])
        if manifest.get("kind") == "interference":
            return "interference"
        conditions = manifest.get("conditions") or []
        if manifest.get("kind") == "following" or {"vision", "text", "multi"} <= set(conditions):
            return "study"
    return None


def load_agents(source: str | Path, gold: str = "auto", scores: str = "candidates",
                scale: str = "auto") -> AgentOutputs:
    """Agent outputs from a JSONL file or a study run folder.

    Args:
        source: ``.jsonl`` file of agent outputs, or a run folder.
        gold: For runs: ``auto``, ``vision`` or ``text`` (see the module docstring).
        scores: For runs: ``candidates`` or ``vocab``.
        scale: For JSONL: ``auto``, ``unit`` or ``percent``.

    Raises:
        SabotageInputError: the source is malformed (line and field named).
        FileNotFoundError: no such file or folder.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; give a JSONL of agent "
                                "outputs or a run folder")
    if path.is_file():
        return read_agent_jsonl(path, scale=scale)
    kind = run_kind(path)
    if kind is not None:
        if kind == "study":
            records, notes = study_records(path, gold=gold, scores=scores)
        else:
            records, notes = interference_records(path, scores=scores)
        outputs = agent_table(records, source=str(path / "items.csv"), scale="unit")
        return AgentOutputs(table=outputs.table, scales=outputs.scales,
                            quality_scales=outputs.quality_scales, source=str(path),
                            notes=tuple(notes))
    raise SabotageInputError(str(path), [("not a run folder modprobe knows (no manifest.json "
                                         "of a study or interference run beside items.csv); "
                                         "give a run folder or a JSONL of agent outputs")])
