"""Figures of the sabotage analysis (same conventions as `modprobe.analysis.following.plots`).

Each function takes the report's tidy tables (so ``figures/sabotage.py`` can redraw them
from a report folder's CSV files), draws into the caller's ``ax=`` (``fig=`` for the
two-panel reliability figure) or a fresh figure, returns the figure it drew in and saves
it when ``path`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from modprobe.analysis.plotting import (
    PathLike,
    error_bars,
    figure_and_axes,
    panel_figure,
    save_figure,
)

#: Bars of the sabotage figure, in order, with their legend text.
BAR_MEASURES = {
    "potential_sabotage": "potential sabotage (wrong, conf >= tau)",
    "wrong_agent_fused": "fused top-1 = its wrong label",
    "successful_sabotage": "successful sabotage (fusion right without it)",
    "wrong_agent_joint": "joint top-1 = its wrong label",
    "accuracy": "accuracy (top-1 = gold)",
    "contributions": "contributor (fusion wrong without it)",
}
FUSION_COLOR = "black"


def _palette(names: list[str]) -> dict[str, Any]:
    # The colorblind palette without its gray, which is close to the fusion's black.
    colors = [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != 7]
    return {name: colors[i % len(colors)] for i, name in enumerate(names)}


def plot_reliability(calibration: pd.DataFrame, ece: Mapping[str, float],
                     title: str = "Reliability of each agent",
                     path: PathLike | None = None, fig: FigureBase | None = None,
                     ) -> FigureBase:
    """Calibration curve per agent (accuracy vs mean confidence per bin) and bin counts.

    Args:
        calibration: `SabotageReport.calibration` (``agent, bin_low, bin_high, n,
            confidence, accuracy, low, high``).
        ece: Expected calibration error per agent (shown in the legend).
        title: Title of the reliability panel.
        path: Where to save (see :func:`modprobe.analysis.plotting.save_figure`).
        fig: Figure or subfigure to fill with the two panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    fig = panel_figure(fig, 9.5, 4.2)
    with sns.axes_style("whitegrid"):
        ax, ax_n = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    agents = list(dict.fromkeys(calibration["agent"]))
    colors = _palette(agents)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    width = 0.8 / max(len(agents), 1)
    for j, agent in enumerate(agents):
        part = calibration[calibration["agent"] == agent]
        ax.errorbar(part["confidence"], part["accuracy"],
                    yerr=error_bars(part["accuracy"], part["low"].fillna(part["accuracy"]),
                                     part["high"].fillna(part["accuracy"])),
                    marker="o", markersize=4, capsize=2, color=colors[agent],
                    label=f"{agent} (ECE {ece.get(agent, float('nan')):.3f})")
        centers = (part["bin_low"] + part["bin_high"]) / 2
        step = float((part["bin_high"] - part["bin_low"]).iloc[0]) if len(part) else 0.1
        ax_n.bar(centers - step * 0.4 + (j + 0.5) * width * step, part["n"],
                 width=width * step, color=colors[agent], label=agent)
    ax.set(xlim=(0, 1.02), ylim=(-0.02, 1.02), xlabel="confidence in the top label (bin mean)",
           ylabel="accuracy of the top label", title=title)
    ax.legend(fontsize=8, loc="upper left")
    ax_n.set(xlim=(0, 1), xlabel="confidence in the top label", ylabel="items",
             title="Items per confidence bin")
    ax_n.legend(fontsize=8)
    save_figure(fig, path)
    return fig


def plot_sabotage_bars(rates: pd.DataFrame, tau: float, level: str = "agent",
                       title: str | None = None, path: PathLike | None = None,
                       ax: Axes | None = None) -> FigureBase:
    """Rates of potential and successful sabotage and of contribution, with intervals.

    Args:
        rates: `SabotageReport.rates` (``level, name, measure, rate, low, high``).
        tau: The confidence threshold (for the legend).
        level: ``agent``, ``modality`` or ``group``.
        title: Axes title (default: names the level).
        path: Where to save (see :func:`modprobe.analysis.plotting.save_figure`).
        ax: Axes to draw in (default: a new figure's; the legend then goes below it).

    Returns:
        The figure drawn in.
    """
    own = ax is None
    part = rates[(rates["level"] == level) & rates["measure"].isin(list(BAR_MEASURES))]
    names = list(dict.fromkeys(part["name"]))
    measures = [m for m in BAR_MEASURES if part.loc[part["measure"] == m, "rate"].notna().any()]
    fig, ax = figure_and_axes(ax, max(6.0, min(1.6, 8.0 / max(len(names), 1)) * len(names) + 3),
                              4.4)
    colors = dict(zip(BAR_MEASURES, sns.color_palette("Set2", len(BAR_MEASURES))))
    width = 0.8 / max(len(measures), 1)
    x = np.arange(len(names))
    for j, measure in enumerate(measures):
        sub = part[part["measure"] == measure].set_index("name").reindex(names)
        rate = sub["rate"].to_numpy(np.float64)
        shown = np.nan_to_num(rate)
        bars = ax.bar(x + (j - (len(measures) - 1) / 2) * width, shown, width=width,
                      color=colors[measure],
                      label=BAR_MEASURES[measure].replace("tau", f"{tau:g}"),
                      yerr=np.nan_to_num(error_bars(rate, sub["low"], sub["high"])),
                      capsize=2, error_kw={"linewidth": 0.8})
        for bar, value in zip(bars, rate):
            if not np.isfinite(value):  # undefined (e.g. the joint agent is not fused)
                ax.text(bar.get_x() + bar.get_width() / 2, 0.01, "n/a", ha="center",
                        va="bottom", fontsize=7, rotation=90, color="0.4")
    ax.set_xticks(x, [n.replace("/", "\n") for n in names], fontsize=8 if len(names) > 5 else None)
    ax.set(ylim=(0, 1.0), ylabel="share of items", xlabel=level,
           title=title or f"Sabotage and contribution per {level}")
    if own:  # below the axes, in the figure's margin (constrained layout)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2,
                   fontsize=8, frameon=False)
    else:
        ax.legend(fontsize=7, frameon=False)
    save_figure(fig, path)
    return fig


def plot_topk_coverage(topk: pd.DataFrame, title: str = "Top-k coverage",
                       path: PathLike | None = None, ax: Axes | None = None) -> FigureBase:
    """Share of items whose gold label is in the top k, per agent and for the fusion.

    Args:
        topk: `SabotageReport.topk` (``who, k, rate, low, high``).
        title: Axes title.
        path: Where to save (see :func:`modprobe.analysis.plotting.save_figure`).
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in.
    """
    fig, ax = figure_and_axes(ax, 6.4, 4.2)
    whos = list(dict.fromkeys(topk["who"]))
    agents = [w for w in whos if w != "fusion"]
    colors = _palette(agents)
    colors["fusion"] = FUSION_COLOR
    # The fusion first, wide and pale, so that agents on the same values stay visible.
    for who in (["fusion"] if "fusion" in whos else []) + agents:
        part = topk[topk["who"] == who].sort_values("k")
        style = {"linewidth": 5, "marker": "s", "alpha": 0.35, "markersize": 8} \
            if who == "fusion" else {"linewidth": 1.4, "marker": "o", "markersize": 4}
        ax.plot(part["k"], part["rate"], color=colors[who],
                label="late fusion" if who == "fusion" else who, **style)
        ax.fill_between(part["k"], part["low"], part["high"], color=colors[who], alpha=0.12,
                        linewidth=0)
    ax.set(xlabel="k", ylabel="gold label in the top k", ylim=(0, 1.03), title=title)
    ax.set_xticks(sorted(topk["k"].unique()))
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return fig
