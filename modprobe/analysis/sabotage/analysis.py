"""Modality sabotage (docs/science.md section 3): agents, fusion, saboteurs and contributors.

Each modality, and the joint input, is an *agent* that returns candidate labels, best
first, with confidences (`modprobe.analysis.sabotage.input` reads and validates them;
`modprobe.analysis.sabotage.runs` builds them from modprobe's run folders). Tables in,
no model code.

Definitions (tau = 0.70 by default; confidences normalised to [0, 1]):

- **Fusion.** s(y) = sum over the fused agents m of w_m S_m(y), with S_m(y) the agent's
  confidence in y (0 for a label it did not list) and w_m = 1 (``weights="equal"``) or its
  self-reported quality (``weights="quality"``); p(y) = s(y) / sum_y s(y) (uniform over
  the listed labels when every score is 0). The fused agents are all but ``joint`` (the
  joint agent is the baseline that fusion is compared with) unless ``fuse_joint=True``.
- **Ties** in p (equal after rounding to 12 decimals, so summation order cannot decide)
  are broken, in this order, by the best rank any fused agent gave the label (a label some
  agent ranked first beats one ranked second at best), then by how many fused agents
  listed it (more first), then by the label's text (alphabetical). Top-k is read from
  this order.
- **Potential sabotage** by agent m on an item: its top label is wrong and its
  confidence in it is >= tau.
- **Successful sabotage** (paper 002's saboteur, read counterfactually): a potential
  sabotage on an item whose fused top-1 is wrong and whose fusion over the other fused
  agents (`modprobe.analysis.sabotage.counterfactual`) would have been right. A
  unanimous error has no successful saboteur.
- **Contributor** (paper 002's, counterfactually): an agent whose top label is gold, on
  an item whose fused top-1 is gold and whose fusion without it is not.
- The looser counts, under their own names: ``wrong_agent_fused`` (a potential sabotage
  whose label the fused top-1 is, whatever the others said), ``wrong_agent_joint`` (the
  joint agent's top-1 is that label: the model's own fusion, when a ``joint`` agent
  exists), ``accuracy`` (top label gold) and ``correct_agent_fused`` (top label gold and
  fused top-1 gold).
- **Reliability**: accuracy, a calibration curve (equal-width confidence bins: mean
  confidence vs accuracy) and the expected calibration error
  ``ECE = sum over bins n_b / n |accuracy_b - confidence_b|``.

Every rate comes with `modprobe.stats.mean_interval`: a cluster bootstrap when items
carry cluster labels (or when one rate pools several agents' answers to the same item,
then the item is the cluster), the Wilson interval otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.sabotage.counterfactual import counterfactual_roles, fused_without
from modprobe.analysis.sabotage.fusion import WEIGHTS, default_fused_agents, fuse  # noqa: F401 (WEIGHTS: public here too)
from modprobe.analysis.sabotage.input import FUSION, JOINT, MEASURES, AgentOutputs
from modprobe.analysis.sabotage.report import summary_dict, summary_lines
from modprobe.stats import DEFAULT_RESAMPLES, Interval, mean_interval

TAU = 0.70


def _gold_rank(ranked: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Rank of the gold label in each ranked list (inf when absent), indexed by ``keys``."""
    hit = ranked[ranked["label"] == ranked["gold"]]
    return hit.set_index(keys)["rank"].astype(float)


@dataclass
class SabotageReport:
    """Everything the sabotage analysis computed (tables are tidy pandas frames).

    Attributes:
        outputs: The validated agent outputs.
        tau: Confidence threshold of potential sabotage.
        weights: ``equal`` or ``quality``.
        fused_agents: The agents summed in the fusion.
        fused: `fuse` output (item x label, ranked).
        per_agent: One row per item x agent: ``item, agent, modality, label, confidence,
            gold, correct, gold_rank, fused_top1, joint_top1, top1_without (fused top-1
            without the agent), potential_sabotage, successful_sabotage,
            wrong_agent_fused, wrong_agent_joint, accuracy, contributions,
            correct_agent_fused, cluster, group`` (NaN where undefined).
        items: One row per item: gold, fused top-1 and its p, fused gold rank,
            contributors, correct agents, saboteurs, successful saboteurs, the joint
            agent's answer.
        rates: One row per (level, name, measure): count, n, rate, low, high, method.
        topk: One row per (who, k): count, n, rate, low, high (who: agents and fusion).
        calibration: One row per (agent, bin): bin edges, n, confidence, accuracy, low, high.
        ece: Expected calibration error per agent.
        sabotaged: The potential sabotages, one row each, to read.
        notes: Choices and caveats the reader should see.
    """

    outputs: AgentOutputs
    tau: float
    weights: str
    fused_agents: list[str]
    fused: pd.DataFrame
    per_agent: pd.DataFrame
    items: pd.DataFrame
    rates: pd.DataFrame
    topk: pd.DataFrame
    calibration: pd.DataFrame
    ece: dict[str, float]
    sabotaged: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def agents(self) -> list[str]:
        """Agent names in order of first appearance in the outputs."""
        return self.outputs.agents

    def rate(self, name: str, measure: str, level: str = "agent") -> pd.Series:
        """The row of ``rates`` for one agent (or modality, group) and measure.

        Args:
            name: The agent, modality or group.
            measure: One of :data:`MEASURES`.
            level: ``"agent"``, ``"modality"`` or ``"group"``.

        Returns:
            The row: count, n, rate, low, high, method.
        """
        sel = self.rates[(self.rates["level"] == level) & (self.rates["name"] == name)
                         & (self.rates["measure"] == measure)]
        return sel.iloc[0]

    def coverage(self, who: str, k: int) -> float:
        """Top-k coverage of an agent or the fusion: the share of items whose gold is in its top k.

        Args:
            who: An agent, or ``"fusion"``.
            k: How many ranked labels count.

        Returns:
            The share, NaN when it was not computed.
        """
        sel = self.topk[(self.topk["who"] == who) & (self.topk["k"] == k)]
        return float(sel["rate"].iloc[0]) if len(sel) else float("nan")

    def summary(self) -> dict[str, Any]:
        """The JSON summary (``summary.json``); see `modprobe.analysis.sabotage.report`."""
        return summary_dict(self)

    def summary_lines(self) -> list[str]:
        """What the CLI prints."""
        return summary_lines(self)


def _clusters_for(frame: pd.DataFrame, complete_clusters: bool) -> Any:
    """Cluster labels for a rate over ``frame`` rows (None: independent rows)."""
    if complete_clusters:
        return frame["cluster"].to_numpy()
    if frame["item"].duplicated().any():
        return frame["item"].to_numpy()
    return None


def _rate_row(values: pd.Series, clusters: Any, **options: Any) -> dict[str, Any]:
    interval: Interval = mean_interval(values.to_numpy(np.float64), clusters, kind="rate",
                                            **options)
    finite = values.dropna()
    return {"count": int(finite.sum()), "n": len(finite), "rate": interval.estimate,
            "low": interval.low, "high": interval.high, "method": interval.method,
            "n_clusters": interval.n_clusters, "note": interval.note}


def analyze_sabotage(outputs: AgentOutputs, tau: float = TAU, weights: str = "equal",
                     fuse_joint: bool = False, bins: int = 10, max_k: int | None = None,
                     confidence: float = 0.95, n_bootstrap: int = DEFAULT_RESAMPLES,
                     seed: int = 0) -> SabotageReport:
    """Fusion, sabotage, contributions, top-k and reliability of agent outputs.

    Args:
        outputs: Validated agent outputs (`read_agent_jsonl`, `agents_from_run`...).
        tau: Confidence at or above which a wrong top label is a potential sabotage.
        weights: Fusion weights, ``equal`` or ``quality``.
        fuse_joint: Also sum the ``joint`` agent into the fusion.
        bins: Equal-width confidence bins of the calibration curve.
        max_k: Largest k of the top-k curves (None: the longest ranked list, at least 5).
        confidence: Interval level.
        n_bootstrap: Bootstrap replicates of cluster intervals.
        seed: Bootstrap seed.

    Returns:
        The :class:`SabotageReport`.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    table = outputs.table
    agents = outputs.agents
    fused_agents = agents if fuse_joint else default_fused_agents(table)
    fused = fuse(table, weights=weights, agents=fused_agents)
    options = {"confidence": confidence, "n_bootstrap": n_bootstrap, "seed": seed}

    top = table[table["rank"] == 1].set_index(["item", "agent"])
    per_agent = top[["modality", "label", "score", "gold", "cluster", "group"]].rename(
        columns={"score": "confidence"}).reset_index()
    gold_rank = _gold_rank(table, ["item", "agent"])
    per_agent["gold_rank"] = gold_rank.reindex(
        pd.MultiIndex.from_frame(per_agent[["item", "agent"]])).fillna(np.inf).to_numpy()
    fused_top1 = fused[fused["rank"] == 1].set_index("item")["label"]
    per_agent["fused_top1"] = per_agent["item"].map(fused_top1)
    joint_top1 = top.xs(JOINT, level="agent")["label"] if JOINT in agents else pd.Series(
        dtype=object)
    per_agent["joint_top1"] = per_agent["item"].map(joint_top1)
    per_agent = _agent_flags(per_agent, table, fused_agents, weights, tau)
    items = _item_table(table, fused, per_agent, fused_agents)
    complete = bool(items["cluster"].notna().all())
    notes = list(outputs.notes)
    if not complete and items["cluster"].notna().any():
        notes.append("some items have no cluster label: intervals treat items as independent")
    rates = _rates(per_agent, complete, options)
    flat = rates[(rates["n"] > 0) & (rates["low"] == rates["high"])]
    if len(flat):
        notes.append(f"{len(flat)} rates have a zero-width interval: every resampled cluster "
                     "gives the same value; the data show no spread, not certainty")
    topk = _topk(table, fused, items, complete, max_k, options)
    calibration, ece = _calibration(per_agent, bins, complete, options)
    sabotaged = _sabotaged(per_agent)
    incomplete = int((items["n_agents"] < len(agents)).sum())
    if incomplete:
        notes.append(f"{incomplete} of {len(items)} items lack some agent's answer; each rate "
                     "is over the items the agent answered")
    return SabotageReport(outputs=outputs, tau=tau, weights=weights, fused_agents=fused_agents,
                          fused=fused, per_agent=per_agent, items=items, rates=rates,
                          topk=topk, calibration=calibration, ece=ece, sabotaged=sabotaged,
                          notes=notes)


def _agent_flags(per_agent: pd.DataFrame, table: pd.DataFrame, fused_agents: list[str],
                 weights: str, tau: float) -> pd.DataFrame:
    """Add every per-agent flag to ``per_agent``.

    The flags: correct, potential and successful sabotage, the looser counts and the
    contributions.
    """
    correct = per_agent["label"] == per_agent["gold"]
    per_agent["correct"] = correct
    wrong_sure = ~correct & (per_agent["confidence"] >= tau)
    per_agent["potential_sabotage"] = wrong_sure.astype(float)
    in_fusion = per_agent["agent"].isin(fused_agents)
    per_agent["in_fusion"] = in_fusion
    per_agent["wrong_agent_fused"] = np.where(
        in_fusion, (wrong_sure & (per_agent["fused_top1"] == per_agent["label"])).astype(float),
        np.nan)
    has_joint = per_agent["joint_top1"].notna() & (per_agent["agent"] != JOINT)
    per_agent["wrong_agent_joint"] = np.where(
        has_joint, (wrong_sure & (per_agent["joint_top1"] == per_agent["label"])).astype(float),
        np.nan)
    per_agent["accuracy"] = correct.astype(float)
    per_agent["correct_agent_fused"] = np.where(
        in_fusion, (correct & (per_agent["fused_top1"] == per_agent["gold"])).astype(float),
        np.nan)
    without = fused_without(table, fused_agents, weights)
    per_agent = per_agent.merge(without, on=["item", "agent"], how="left")
    per_agent["successful_sabotage"], per_agent["contributions"] = counterfactual_roles(
        per_agent)
    return per_agent


def _item_table(table: pd.DataFrame, fused: pd.DataFrame, per_agent: pd.DataFrame,
                fused_agents: list[str]) -> pd.DataFrame:
    first = table.drop_duplicates("item").set_index("item")
    items = first[["gold", "cluster", "group"]].copy()
    top = fused[fused["rank"] == 1].set_index("item")
    items["fused_top1"] = top["label"]
    items["fused_p1"] = top["p"]
    gold_rank = _gold_rank(fused.merge(first[["gold"]], left_on="item", right_index=True),
                           ["item"])
    items["fused_gold_rank"] = gold_rank.reindex(items.index).fillna(np.inf)
    items["fused_correct"] = items["fused_top1"] == items["gold"]
    grouped = per_agent.groupby("item", sort=False)

    def names(mask: pd.Series) -> pd.Series:
        chosen = per_agent[mask.astype(bool)]
        return chosen.groupby("item", sort=False)["agent"].agg(",".join)

    fused_mask = per_agent["agent"].isin(fused_agents)
    items["n_agents"] = grouped["agent"].size()
    items["contributors"] = names(per_agent["contributions"] == 1)
    items["correct_agents"] = names(fused_mask & per_agent["correct"])
    items["saboteurs"] = names(per_agent["potential_sabotage"] == 1)
    items["successful_saboteurs"] = names(per_agent["successful_sabotage"] == 1)
    items["wrong_agents_fused"] = names(per_agent["wrong_agent_fused"] == 1)
    if JOINT in set(per_agent["agent"]):
        joint = per_agent[per_agent["agent"] == JOINT].set_index("item")
        items["joint_top1"] = joint["label"]
        items["joint_correct"] = joint["correct"]
    for column in ("contributors", "correct_agents", "saboteurs", "successful_saboteurs",
                   "wrong_agents_fused"):
        items[column] = items[column].fillna("")
    return items.reset_index()


def _rates(per_agent: pd.DataFrame, complete: bool, options: dict[str, Any]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    levels = [("agent", per_agent["agent"]), ("modality", per_agent["modality"])]
    if per_agent["group"].notna().all() and per_agent["group"].nunique() > 1:
        levels.append(("group/agent", per_agent["group"] + "/" + per_agent["agent"]))
    for level, key in levels:
        for name, part in per_agent.groupby(key, sort=False):
            clusters = _clusters_for(part, complete)
            for measure in MEASURES:
                values = part[measure]
                row = {"level": level, "name": str(name), "measure": measure}
                if values.notna().any():
                    keep = values.notna().to_numpy()
                    row.update(_rate_row(values[keep], None if clusters is None
                                         else np.asarray(clusters)[keep], **options))
                else:
                    row.update({"count": 0, "n": 0, "rate": np.nan, "low": np.nan,
                                "high": np.nan, "method": "none", "n_clusters": None,
                                "note": "not defined for this agent"})
                rows.append(row)
    return pd.DataFrame(rows)


def _topk(table: pd.DataFrame, fused: pd.DataFrame, items: pd.DataFrame, complete: bool,
          max_k: int | None, options: dict[str, Any]) -> pd.DataFrame:
    longest = int(max(table["rank"].max(), fused["rank"].max()))
    max_k = max_k or max(5, longest)
    ranks: dict[str, pd.DataFrame] = {}
    for agent, part in table.groupby("agent", sort=False):
        got = _gold_rank(part, ["item"])
        sub = part.drop_duplicates("item").set_index("item")[["cluster"]]
        sub["gold_rank"] = got.reindex(sub.index).fillna(np.inf)
        ranks[str(agent)] = sub.reset_index()
    ranks[FUSION] = items[["item", "cluster", "fused_gold_rank"]].rename(
        columns={"fused_gold_rank": "gold_rank"})
    rows = []
    for who, frame in ranks.items():
        clusters = frame["cluster"].to_numpy() if complete else None
        for k in range(1, max_k + 1):
            hit = (frame["gold_rank"] <= k).astype(float)
            rows.append({"who": who, "k": k, **_rate_row(hit, clusters, **options)})
    return pd.DataFrame(rows)


def _calibration(per_agent: pd.DataFrame, bins: int, complete: bool,
                 options: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, float]]:
    edges = np.arange(bins + 1) / bins  # exact edges: a confidence of 0.7 opens [0.7, 0.8)
    rows = []
    ece: dict[str, float] = {}
    for agent, part in per_agent.groupby("agent", sort=False):
        conf = part["confidence"].to_numpy(np.float64)
        # Bin b holds [edge_b, edge_b+1), the last bin also 1.0.
        index = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
        total = 0.0
        for b in range(bins):
            mask = index == b
            if not mask.any():
                continue
            sub = part[mask]
            row = _rate_row(sub["correct"].astype(float), sub["cluster"].to_numpy()
                            if complete else None, **options)
            mean_conf = float(conf[mask].mean())
            total += mask.sum() / len(conf) * abs(row["rate"] - mean_conf)
            rows.append({"agent": agent, "bin": b, "bin_low": edges[b], "bin_high": edges[b + 1],
                         "n": int(mask.sum()), "confidence": mean_conf,
                         "accuracy": row["rate"], "low": row["low"], "high": row["high"]})
        ece[str(agent)] = float(total)
    return pd.DataFrame(rows), ece


def _sabotaged(per_agent: pd.DataFrame) -> pd.DataFrame:
    """The potential sabotages, with every agent's answer on the item, to read."""
    answers = per_agent.assign(
        answer=per_agent["agent"] + ": " + per_agent["label"] + " ("
        + per_agent["confidence"].map(lambda c: f"{c:.4f}") + ")")
    others = answers.groupby("item", sort=False)["answer"].agg("; ".join)
    chosen = per_agent[per_agent["potential_sabotage"] == 1]
    out = chosen[["item", "agent", "label", "confidence", "gold", "fused_top1",
                  "top1_without", "successful_sabotage", "wrong_agent_fused", "joint_top1",
                  "wrong_agent_joint", "group"]].copy()
    out["all_agents"] = out["item"].map(others)
    out = out.sort_values(["successful_sabotage", "wrong_agent_fused", "confidence"],
                          ascending=[False, False, False],
                          kind="mergesort", na_position="last")
    return out.reset_index(drop=True)
