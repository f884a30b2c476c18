"""Counterfactual roles of agents in a fusion (paper 002's saboteur and contributor).

Paper 002 (arXiv 2511.02794) calls a modality a *saboteur* when "a single high-confidence
unimodal error overrides other evidence and misleads the final prediction", and a
*contributor* when it supports the correct outcome. Both are statements about what the
fusion would have said without the agent, so modprobe reads them counterfactually:

- the fusion *without* agent m on an item is the same fusion (same weights, same
  tie-breaking, `modprobe.analysis.sabotage.fusion.fuse`) over the item's other fused agents;
  when m is the item's only fused agent there is no answer without it;
- a **successful saboteur** is a potential saboteur (wrong top label, confidence >= tau)
  on an item whose fused top-1 is wrong and whose fusion without it is right;
- a **contributor** is an agent whose top label is right, on an item whose fused top-1
  is right and whose fusion without it is not (wrong, or no answer at all).

So a unanimous error has no successful saboteur (removing any one wrong agent leaves the
others' wrong answer), and a correct answer that several agents carry with room to spare
has no contributor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modprobe.analysis.sabotage.fusion import fuse


def fused_without(table: pd.DataFrame, fused_agents: list[str], weights: str) -> pd.DataFrame:
    """The fused top-1 of every item with each fused agent left out in turn.

    Args:
        table: An agent table (`AgentOutputs.table`).
        fused_agents: The agents of the full fusion.
        weights: Fusion weights (``equal`` or ``quality``), as in the full fusion.

    Returns:
        One row per (item, agent) with the agent among the item's fused agents:
        ``item, agent, top1_without`` (None when the agent is the item's only fused one).
    """
    present = table[table["agent"].isin(fused_agents)][["item", "agent"]].drop_duplicates()
    parts = []
    for agent in fused_agents:
        items = present.loc[present["agent"] == agent, "item"]
        if items.empty:
            continue
        others = [a for a in fused_agents if a != agent]
        rest = table[table["item"].isin(items) & table["agent"].isin(others)]
        top1 = (fuse(rest, weights=weights, agents=others).query("rank == 1")
                .set_index("item")["label"] if len(rest) else pd.Series(dtype=object))
        parts.append(pd.DataFrame({"item": items.to_numpy(), "agent": agent,
                                   "top1_without": items.map(top1).to_numpy()}))
    if not parts:
        return pd.DataFrame(columns=["item", "agent", "top1_without"])
    out = pd.concat(parts, ignore_index=True)
    out["top1_without"] = out["top1_without"].astype(object).where(
        out["top1_without"].notna(), None)
    return out


def counterfactual_roles(per_agent: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Successful sabotage and contribution flags of fused agents, from ``per_agent``.

    Args:
        per_agent: Rows with ``label, gold, correct, potential_sabotage, fused_top1,
            top1_without`` (``top1_without`` missing for agents outside the fusion).

    Returns:
        ``(successful_sabotage, contributions)`` as float arrays: 1/0 for fused agents,
        NaN for agents outside the fusion.
    """
    in_fusion = per_agent["in_fusion"].to_numpy(bool)
    fused_right = (per_agent["fused_top1"] == per_agent["gold"]).to_numpy(bool)
    without_right = (per_agent["top1_without"] == per_agent["gold"]).to_numpy(bool)
    saboteur = (per_agent["potential_sabotage"].to_numpy(float) == 1) & ~fused_right \
        & without_right
    contributor = per_agent["correct"].to_numpy(bool) & fused_right & ~without_right
    return (np.where(in_fusion, saboteur.astype(float), np.nan),
            np.where(in_fusion, contributor.astype(float), np.nan))
