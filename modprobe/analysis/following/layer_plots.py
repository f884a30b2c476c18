"""Per-layer figures of the following analysis: the logit difference and the attention mass.

Same conventions as `modprobe.analysis.plotting` (``ax=``/``fig=`` to compose, ``path=`` saves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import FigureBase
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from modprobe.analysis.following.logit_difference import LogitDifferenceMatrix
from modprobe.analysis.plotting import (
    SPAN_LABELS,
    SPAN_ORDER,
    PathLike,
    figure_and_axes,
    panel_figure,
    save_figure,
)


def plot_logit_difference(
    matrix: LogitDifferenceMatrix,
    balance_point: float | None = None,
    x_label: str = r"$\Delta H_{rel}$ (items sorted)",
    n_ticks: int = 7,
    title: str | None = None,
    path: PathLike | Sequence[PathLike] | None = None,
    ax: Axes | None = None,
) -> FigureBase:
    """Heatmap of per-layer ``logit(Y_t) - logit(Y_v)``, items ordered by the axis.

    docs/science.md section 1, "Heatmap": layers on the y axis (first layer at the bottom),
    items sorted by dH_rel on the x axis (ticks show dH_rel values), a diverging colour
    scale centred at 0 (red: the text answer leads; blue: the vision answer leads),
    clipped at the 99th percentile of ``|difference|``; the balance point, if given,
    is a vertical line.

    Args:
        matrix: `LogitDifferenceMatrix` (``layers items``, sorted).
        balance_point: Axis value to mark.
        x_label: X axis label.
        n_ticks: Number of x ticks.
        title: Figure title.
        path: Where to save.
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in (``ax.figure`` when ``ax`` is given).
    """
    values = matrix.values
    fig, ax = figure_and_axes(ax, 7.0, 4.2, style="white")
    finite = values[np.isfinite(values)]
    vmax = float(np.quantile(np.abs(finite), 0.99)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    image = ax.imshow(
        values,
        aspect="auto",
        origin="lower",
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax),
        interpolation="nearest",
    )
    cbar = fig.colorbar(image, ax=ax, pad=0.01)
    cbar.set_label(r"logit($Y_t$) $-$ logit($Y_v$)")
    n_items = values.shape[1]
    if n_items:
        ticks = np.unique(np.linspace(0, n_items - 1, n_ticks).round().astype(int))
        ax.set_xticks(ticks, [f"{matrix.x[t]:.2f}" for t in ticks])
    ax.set_xlabel(x_label)
    ax.set_ylabel("layer")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if balance_point is not None and np.isfinite(balance_point) and n_items:
        pos = np.searchsorted(matrix.x, balance_point) - 0.5
        ax.axvline(pos, color="black", lw=1.2, ls="--", label=f"balance point {balance_point:.2f}")
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return fig


def plot_attention_mass(
    frame: pd.DataFrame,
    title: str | None = None,
    path: PathLike | Sequence[PathLike] | None = None,
    fig: FigureBase | None = None,
) -> FigureBase:
    """Attention mass received by each span, per layer.

    docs/science.md sections 1-2 (attention per modality; MMA-Bench's white-box view). One
    panel per (``model``, ``condition``) when present: models in rows, conditions in
    columns, so each panel reads as image vs description (``context``) vs question and
    template (``text``). Colour = span, in modprobe's span order, labelled by
    :data:`SPAN_LABELS`. Several rows per (model, condition, layer, span), e.g. heads or
    items, are averaged; the shaded band is the normal 95% interval ``mean +- 1.96 SE``
    (computed by one groupby, so frames with millions of rows plot quickly).

    Args:
        frame: Tidy frame with columns ``layer, span, mass`` and optional ``model``,
            ``condition``.
        title: Figure title.
        path: Where to save.
        fig: Figure or subfigure to fill with the panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.

    Raises:
        ValueError: On missing columns or unknown spans.
    """
    data = _attention_rows(frame)
    stats_frame = (
        data.groupby(["model", "condition", "span", "layer"], sort=False)["mass"]
        .agg(["mean", "sem", "count"])
        .reset_index()
    )
    stats_frame["sem"] = stats_frame["sem"].fillna(0.0)
    models = list(dict.fromkeys(data["model"]))
    conditions = list(dict.fromkeys(data["condition"]))
    spans = [s for s in SPAN_ORDER if s in set(data["span"])]
    colors = _span_colors()
    fig = panel_figure(fig, 3.6 * len(conditions) + 2.4, 3.2 * len(models) + 0.6)
    with sns.axes_style("whitegrid"):
        grid = fig.subplots(len(models), len(conditions), sharey=True, squeeze=False)
    for r, model in enumerate(models):
        for c, condition in enumerate(conditions):
            ax = grid[r, c]
            cell = stats_frame[(stats_frame["model"] == model)
                               & (stats_frame["condition"] == condition)]
            if cell.empty:  # this model was not run under this condition
                ax.set_axis_off()
                continue
            _draw_attention_panel(ax, cell, spans, colors)
            if c == 0 or not grid[r, c - 1].axison:
                ax.tick_params(labelleft=True)  # sharey hides them off the first column
                ax.set_ylabel(f"{model}\nattention mass" if len(models) > 1 and model
                              else "attention mass")
            name = " | ".join(str(p) for p in (model if len(models) > 1 else "", condition)
                              if p)
            if name:
                ax.set_title(name, fontsize=10)
    # Shared y axis: fix its bottom only once every panel is drawn (fixing it per panel
    # froze the top at the first panels' data and cut off the later ones).
    top = float(np.nanmax(stats_frame["mean"] + 1.96 * stats_frame["sem"].fillna(0)))
    grid[0, 0].set_ylim(0, max(top, 1e-9) * 1.05)
    handles = [Line2D([], [], color=colors[s], lw=2, label=SPAN_LABELS.get(s, s)) for s in spans]
    grid[0, -1].legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


def _attention_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``model`` and ``condition`` columns ("" when absent), spans as text.

    Raises:
        ValueError: On missing columns or unknown spans.
    """
    missing = {"layer", "span", "mass"} - set(frame.columns)
    if missing:
        raise ValueError(f"attention frame lacks column(s) {sorted(missing)}")
    unknown = set(frame["span"]) - set(SPAN_ORDER)
    if unknown:
        raise ValueError(f"unknown span(s) {sorted(unknown)}; spans are {', '.join(SPAN_ORDER)}")
    return frame.assign(
        model=frame.get("model", ""),
        condition=frame.get("condition", ""),
        span=frame["span"].astype(str),
    )


def _span_colors() -> dict[str, Any]:
    """One fixed colour per span, the same in every panel and figure."""
    # The description in purple, the template-and-question text in grey, so that video's
    # orange and the description never look alike.
    palette = sns.color_palette("colorblind", 10)
    colors = {"image": palette[0], "video": palette[1], "audio": palette[2],
              "context": palette[4], "text": palette[7]}
    colors.update({s: palette[9] for s in SPAN_ORDER if s not in colors})
    return colors


def _draw_attention_panel(ax: Axes, cell: pd.DataFrame, spans: Sequence[str],
                          colors: dict[str, Any]) -> None:
    """One panel: a line per span over layers, with its ``mean +- 1.96 SE`` band."""
    for span in spans:
        part = cell[cell["span"] == span].sort_values("layer")
        if part.empty:
            continue
        mean, half = part["mean"].to_numpy(), 1.96 * part["sem"].to_numpy()
        ax.fill_between(part["layer"], mean - half, mean + half, color=colors[span],
                        alpha=0.18, lw=0)
        ax.plot(part["layer"], mean, color=colors[span], marker="o", ms=3, lw=1.6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
