"""Late fusion of agents' ranked answers, with the documented tie-breaking.

The one fusion of the sabotage analysis (`modprobe.analysis.sabotage.analysis`): the full fusion
of a report and the fusion without one agent that the counterfactual roles compare
(`modprobe.analysis.sabotage.counterfactual`) both call :func:`fuse`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modprobe.analysis.sabotage.input import JOINT

#: Fusion weights: ``equal`` (w_m = 1) or ``quality`` (the agent's quality on the item).
WEIGHTS = ("equal", "quality")
#: Fused probabilities equal to this many decimals are ties (broken by best rank, ...).
TIE_DECIMALS = 12


def fuse(table: pd.DataFrame, weights: str = "equal",
         agents: list[str] | None = None) -> pd.DataFrame:
    """Late fusion of agent scores, ranked with the documented tie-breaking.

    Args:
        table: An agent table (`AgentOutputs.table`).
        weights: ``equal`` (w_m = 1) or ``quality`` (w_m = the agent's quality on that item).
        agents: Agents to fuse (None: all but ``joint``, or ``joint`` alone if it is all).

    Returns:
        One row per item and label that some fused agent listed: ``item, label, s, p,
        best_rank, n_agents, rank`` (``rank`` 1-based in the fused order).

    Raises:
        ValueError: unknown ``weights``; ``quality`` weights with a quality missing.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if agents is None:
        agents = default_fused_agents(table)
    part = table[table["agent"].isin(agents)]
    if weights == "quality":
        missing = part[part["quality"].isna()]
        if len(missing):
            row = missing.iloc[0]
            raise ValueError(f"line {row['line']}, field 'quality': missing, but quality "
                             "weights need every fused agent's quality; add it or use equal "
                             "weights")
        w = part["quality"].to_numpy(np.float64)
    else:
        w = np.ones(len(part))
    scored = part.assign(ws=w * part["score"].to_numpy(np.float64))
    fused = scored.groupby(["item", "label"], sort=False).agg(
        s=("ws", "sum"), best_rank=("rank", "min"), n_agents=("agent", "nunique")).reset_index()
    total = fused.groupby("item")["s"].transform("sum")
    count = fused.groupby("item")["s"].transform("size")
    fused["p"] = np.where(total > 0, fused["s"] / total.where(total > 0, 1.0), 1.0 / count)
    fused["_key"] = -fused["p"].round(TIE_DECIMALS)
    fused = fused.sort_values(["item", "_key", "best_rank", "n_agents", "label"],
                              ascending=[True, True, True, False, True], kind="mergesort")
    fused["rank"] = fused.groupby("item").cumcount() + 1
    return fused.drop(columns="_key")[["item", "label", "s", "p", "best_rank", "n_agents",
                                       "rank"]].reset_index(drop=True)


def default_fused_agents(table: pd.DataFrame) -> list[str]:
    """Every agent but ``joint`` (``joint`` alone when it is the only agent)."""
    agents = list(dict.fromkeys(table["agent"]))
    return [a for a in agents if a != JOINT] or agents
