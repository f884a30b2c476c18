"""Figures of the interference study: radar of accuracy, flip-rate bars, attention shift.

Like :mod:`modprobe.analysis.following.plots`: each function draws into the caller's ``ax=`` (or
``fig=`` for the multi-panel one), else into a fresh Agg figure (no pyplot state), and
returns the figure it drew in; save it with :func:`modprobe.analysis.plotting.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from modprobe.analysis.plotting import figure_and_axes, panel_figure


def plot_radar(accuracy: Mapping[str, Mapping[str, float]], axes: Sequence[str] | None = None,
               title: str = "Accuracy under each perturbation", ax: Axes | None = None,
               ) -> FigureBase:
    """The paper's radar: one spoke per condition, one polygon per model or variant.

    Args:
        accuracy: ``{model: {condition: accuracy}}`` (conditions a model lacks are left
            out of its polygon's spokes as gaps at 0 are not drawn: they are skipped).
        axes: Spoke order (default: first seen).
        title: Figure title.
        ax: Polar axes to draw in (``add_subplot(projection="polar")``; default: a new
            figure's).

    Returns:
        The figure drawn in.

    Raises:
        ValueError: ``ax`` is not polar.
    """
    if ax is not None and ax.name != "polar":
        raise ValueError("plot_radar draws on polar axes: pass ax=fig.add_subplot("
                         "projection='polar')")
    names = list(axes) if axes is not None else list(dict.fromkeys(
        c for values in accuracy.values() for c in values))
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    fig, ax = figure_and_axes(ax, 7.6, 6.4, style="white", projection="polar")
    palette = sns.color_palette("colorblind", max(len(accuracy), 1))
    for (model, values), color in zip(accuracy.items(), palette):
        keep = [i for i, n in enumerate(names) if n in values and np.isfinite(values[n])]
        if not keep:
            continue
        theta = np.append(angles[keep], angles[keep[0]])
        radius = np.array([values[names[i]] for i in keep] + [values[names[keep[0]]]])
        ax.plot(theta, radius, color=color, linewidth=2, marker="o", label=model)
        ax.fill(theta, radius, color=color, alpha=0.12)
    ax.set_xticks(angles, names)
    ax.tick_params(axis="x", pad=14)
    ax.set_rlabel_position(180 / max(len(names), 1))  # between the first two spokes
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"], fontsize=8)
    ax.set_title(title, pad=18)
    ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.12), fontsize=8, frameon=False)
    return fig


def plot_flip_rates(deltas: pd.DataFrame, title: str = "Flip rate delta per perturbation",
                    ax: Axes | None = None) -> FigureBase:
    """Bars of delta = mean 1[answer changed] with their intervals.

    Args:
        deltas: ``model, perturbation, delta, low, high`` (one row per model and
            perturbation; bars are grouped by perturbation, one color per model).
        title: Figure title.
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in.
    """
    perturbations = list(dict.fromkeys(deltas["perturbation"]))
    models = list(dict.fromkeys(deltas["model"]))
    fig, ax = figure_and_axes(
        ax, min(11.0, 2.0 + 0.75 * len(perturbations) * len(models) ** 0.5), 3.8)
    width = 0.8 / max(len(models), 1)
    palette = sns.color_palette("colorblind", max(len(models), 1))
    for k, (model, color) in enumerate(zip(models, palette)):
        part = deltas[deltas["model"] == model].set_index("perturbation")
        x = np.array([perturbations.index(p) for p in part.index]) + (k - (len(models) - 1) / 2) * width
        center = part["delta"].to_numpy(float)
        low = np.clip(center - part["low"].to_numpy(float), 0, None)
        high = np.clip(part["high"].to_numpy(float) - center, 0, None)
        ax.bar(x, center, width=width * 0.9, color=color, label=model)
        ax.errorbar(x, center, yerr=np.nan_to_num(np.vstack([low, high])), fmt="none",
                    ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks(range(len(perturbations)), perturbations)
    ax.set_ylim(0, 1)
    ax.set_ylabel("delta = share of answers changed")
    ax.set_title(title)
    if len(models) > 1:
        ax.legend(fontsize=8, frameon=False)
    return fig


def plot_attention_shift(shift: pd.DataFrame,
                         title: str = "Attention on the perturbed span, by layer",
                         fig: FigureBase | None = None) -> FigureBase:
    """The answer position's attention mass on the perturbed span by layer.

    One panel per span: the clean input (black, dashed) and each perturbation (solid),
    with interval bands. Perturbations of one span share the clean items, so the clean
    line is one.

    Args:
        shift: The table of :func:`modprobe.analysis.interference.effects.attention_shift`.
        title: Figure title.
        fig: Figure or subfigure to fill with the panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    spans = list(dict.fromkeys(shift["span"])) if len(shift) else ["text"]
    names = list(dict.fromkeys(shift["perturbation"])) if len(shift) else []
    palette = dict(zip(names, sns.color_palette("colorblind", max(len(names), 1))))
    fig = panel_figure(fig, 4.2 * len(spans) + 0.6, 4.0)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, len(spans), sharey=True, squeeze=False)[0]
    for ax, span in zip(axes, spans):
        part = shift[shift["span"] == span]
        clean = part.groupby("layer")[["clean", "clean_low", "clean_high"]].first()
        ax.plot(clean.index, clean["clean"], color="black", linestyle="--", linewidth=1.5,
                label="clean input")
        ax.fill_between(clean.index, clean["clean_low"], clean["clean_high"], color="black",
                        alpha=0.08, linewidth=0)
        for name in dict.fromkeys(part["perturbation"]):
            rows = part[part["perturbation"] == name].sort_values("layer")
            ax.plot(rows["layer"], rows["perturbed"], color=palette[name], marker="o",
                    linewidth=2, label=name)
            ax.fill_between(rows["layer"], rows["perturbed_low"], rows["perturbed_high"],
                            color=palette[name], alpha=0.15, linewidth=0)
        ax.set_title(f"span: {span}")
        ax.set_xlabel("decoder layer")
        ax.set_ylim(0, 1)
        ax.set_xticks(sorted(part["layer"].unique()))
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("attention mass from the answer position")
    fig.suptitle(title)
    return fig
