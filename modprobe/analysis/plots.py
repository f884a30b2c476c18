"""Figures for the section-1 analyses (matplotlib Agg, seaborn styling).

Every function draws into the axes you pass as ``ax=`` (or, for multi-panel figures, the
figure or subfigure you pass as ``fig=``), so several analyses compose into one figure::

    fig = matplotlib.figure.Figure(figsize=(12, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    plot_following_curve(laws, ax=left)
    plot_oscillation(reports, ax=right)

Without ``ax``/``fig`` it builds a fresh `matplotlib.figure.Figure` without pyplot (so
nothing global changes, nothing needs closing and no display is needed: the figure
renders with the Agg canvas). Either way it returns the figure it drew in and saves it
when ``path`` is given: a ``.png`` or ``.pdf`` suffix picks the format, no suffix writes
both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from modprobe.analysis.law import Law
from modprobe.analysis.oscillation import AMBIGUOUS, CLEAR, LogitDifferenceMatrix, OscillationReport
from modprobe.spans import SPAN_NAMES

#: Span order of every modality axis in modprobe (``modprobe.spans.SPAN_NAMES``).
SPAN_ORDER: tuple[str, ...] = SPAN_NAMES

#: Legend labels of the spans: ``context`` is the description, ``text`` the rest of the
#: text (all text = context + text).
SPAN_LABELS: dict[str, str] = {"context": "context (description)",
                               "text": "text (question, template)"}

PathLike = str | Path


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout Figure on the Agg canvas (no pyplot: nothing to close).

    Args:
        width: Width (inches).
        height: Height (inches).

    Returns:
        The empty figure.
    """
    fig = Figure(figsize=(width, height), layout="constrained", dpi=110)
    FigureCanvasAgg(fig)
    return fig


def figure_and_axes(ax: Axes | None, width: float, height: float, style: str = "whitegrid",
                    **subplot: Any) -> tuple[FigureBase, Axes]:
    """The axes to draw in: ``ax`` itself, or the one axes of a new figure.

    Args:
        ax: The caller's axes, or None for a new ``width x height`` inch figure.
        width: Width of a new figure (inches).
        height: Height of a new figure (inches).
        style: The seaborn style of a new figure's axes (a given ``ax`` keeps its own).
        **subplot: ``add_subplot`` arguments of a new axes (``projection="polar"``).

    Returns:
        The figure (or subfigure) holding the axes, and the axes.
    """
    if ax is not None:
        return ax.figure, ax
    with sns.axes_style(style):
        fig = new_figure(width, height)
        return fig, fig.add_subplot(**subplot)


def panel_figure(fig: FigureBase | None, width: float, height: float) -> FigureBase:
    """The figure a multi-panel plot fills: ``fig`` itself, or a new figure.

    Args:
        fig: The caller's Figure or SubFigure (e.g. one of ``Figure.subfigures``), or None.
        width: Width of a new figure (inches).
        height: Height of a new figure (inches).

    Returns:
        ``fig``, or the new figure.
    """
    return fig if fig is not None else new_figure(width, height)



def save_figure(fig: FigureBase, path: PathLike | Sequence[PathLike] | None) -> list[Path]:
    """Save ``fig`` as PNG and/or PDF.

    Args:
        fig: The figure (a subfigure saves the whole figure holding it).
        path: A path with suffix ``.png``/``.pdf``; a path without suffix (both formats
            are written); a sequence of paths; or None (nothing is written).

    Returns:
        The files written.
    """
    if path is None:
        return []
    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    written = []
    for p in paths:
        targets = (
            [p]
            if p.suffix.lower() in (".png", ".pdf")
            else [p.with_name(p.name + ".png"), p.with_name(p.name + ".pdf")]
        )
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fig.figure.savefig(target, dpi=150)
            written.append(target)
    return written


def _error_bars(center: Any, low: Any, high: Any) -> np.ndarray:
    """``2 n`` error-bar lengths, clipped at 0.

    A percentile-bootstrap interval need not contain the point estimate.
    """
    c, lo, hi = (np.asarray(v, dtype=np.float64) for v in (center, low, high))
    return np.maximum(np.stack([c - lo, hi - c]), 0.0)


def _as_mapping(laws: Law | Mapping[str, Law]) -> Mapping[str, Law]:
    return {"": laws} if isinstance(laws, Law) else laws


def plot_following_curve(
    laws: Law | Mapping[str, Law],
    show_bins: bool = True,
    show_isotonic: bool = False,
    show_band: bool = True,
    title: str | None = None,
    x_label: str | None = None,
    path: PathLike | Sequence[PathLike] | None = None,
    ax: Axes | None = None,
) -> FigureBase:
    """P(text-following) against the uncertainty axis, one curve per model.

    docs/science.md section 1, "The law" and "Balance point": the logistic fit with its
    bootstrap band, binned rates with Wilson intervals, optionally the isotonic fit,
    and the balance point marked at P = 0.5 with its interval (a horizontal error bar);
    a model whose curve does not cross 0.5 gets "(no crossing)" in the legend.

    Args:
        laws: One `Law` or model name -> `Law` (overlaid).
        show_bins: Draw the binned rates.
        show_isotonic: Draw the isotonic fit (dashed), its band if bootstrapped
            and no logistic band is drawn, and the monotone balance point (hollow
            circle, with its interval).
        show_band: Draw the logistic bootstrap band.
        title: Figure title.
        x_label: Axis label (default: the first law's ``x_label``).
        path: Where to save (see `save_figure`).
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in (``ax.figure`` when ``ax`` is given).
    """
    mapping = _as_mapping(laws)
    fig, ax = figure_and_axes(ax, 6.4, 4.2)
    palette = sns.color_palette("colorblind", max(len(mapping), 1))
    ax.axhline(0.5, color="0.55", lw=0.8, ls=":")
    first = next(iter(mapping.values()), None)
    if first is not None and first.x_label == "dH_rel":
        ax.axvline(0.0, color="0.55", lw=0.8, ls=":")
    for color, (name, law) in zip(palette, mapping.items()):
        bp = law.balance_point
        label = name or "logistic fit"
        if bp.crosses:
            label += f" (logistic x*={bp.value:.2f})" if show_isotonic else f" (x*={bp.value:.2f})"
        else:
            label += " (no crossing)"
        if show_band:
            ax.fill_between(law.grid, *law.logistic_band, color=color, alpha=0.18, lw=0)
        ax.plot(law.grid, law.logistic_curve, color=color, lw=2, label=label)
        if show_isotonic:
            ax.plot(law.grid, law.isotonic_curve, color=color, lw=1.3, ls="--")
            if law.isotonic_band is not None and not show_band:
                ax.fill_between(law.grid, *law.isotonic_band, color=color, alpha=0.12, lw=0)
        if show_bins and len(law.binned):
            b = law.binned
            ax.errorbar(
                b["x_mean"],
                b["rate"],
                yerr=_error_bars(b["rate"], b["ci_low"], b["ci_high"]),
                fmt="o",
                ms=4,
                color=color,
                ecolor=color,
                elinewidth=1,
                capsize=2,
                alpha=0.85,
            )
        mono = law.balance_point_monotone
        if show_isotonic and mono is not None and mono.crosses:
            # Drawn just below 0.5 so the two intervals do not hide each other.
            ax.errorbar([mono.value], [0.46],
                        xerr=_error_bars([mono.value], [mono.ci_low], [mono.ci_high]),
                        fmt="o", ms=7, mfc="white", color=color, ecolor=color, elinewidth=1,
                        capsize=3, zorder=4,
                        label=f"{name + ' ' if name and len(mapping) > 1 else ''}monotone "
                              f"x*={mono.value:.2f}")
        if bp.crosses:
            ax.errorbar(
                [bp.value],
                [0.5],
                xerr=_error_bars([bp.value], [bp.ci_low], [bp.ci_high]),
                fmt="D",
                ms=7,
                color=color,
                mec="black",
                mew=0.8,
                ecolor=color,
                elinewidth=2.2,
                capsize=4,
                zorder=5,
            )
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(text-following)")
    axis_label = x_label or (first.x_label if first is not None else "x")
    ax.set_xlabel(r"$\Delta H_{rel}$" if axis_label == "dH_rel" else axis_label)
    if title:
        ax.set_title(title)
    ax.legend(frameon=True, fontsize=8, loc="best")
    save_figure(fig, path)
    return fig


def plot_uncertainty_distribution(
    values: Mapping[str, Any] | pd.DataFrame,
    x_label: str = r"$\Delta H_{rel}$",
    bins: int = 30,
    title: str | None = None,
    path: PathLike | Sequence[PathLike] | None = None,
    ax: Axes | None = None,
) -> FigureBase:
    """Distribution of the uncertainty axis per model (step histograms, density scale).

    docs/science.md section 1, "Relative uncertainty": shows where items lie on
    ``[-2, 2]`` and how much of the mass saturates at the ends.

    Args:
        values: Model name -> ``items`` axis values, or a frame with columns ``x`` and
            ``model``. NaN (degenerate) values are dropped.
        x_label: Axis label.
        bins: Histogram bins.
        title: Figure title.
        path: Where to save.
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in (``ax.figure`` when ``ax`` is given).
    """
    if isinstance(values, pd.DataFrame):
        frame = values[["x", "model"]] if "model" in values else values[["x"]].assign(model="")
    else:
        frame = pd.concat(
            [
                pd.DataFrame({"x": np.asarray(v, float).ravel(), "model": k})
                for k, v in values.items()
            ],
            ignore_index=True,
        )
    frame = frame[np.isfinite(frame["x"].to_numpy(float))]
    fig, ax = figure_and_axes(ax, 6.4, 3.6)
    n_models = frame["model"].nunique()
    sns.histplot(
        data=frame,
        x="x",
        hue="model" if n_models > 1 else None,
        bins=bins,
        stat="density",
        common_norm=False,
        element="step",
        fill=False,
        linewidth=1.6,
        ax=ax,
        palette="colorblind" if n_models > 1 else None,
    )
    ax.set_xlabel(x_label)
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return fig


def plot_oscillation(
    reports: OscillationReport | Mapping[str, OscillationReport],
    include_groups: Sequence[str] | None = None,
    title: str | None = None,
    path: PathLike | Sequence[PathLike] | None = None,
    ax: Axes | None = None,
) -> FigureBase:
    """Mean oscillation count by region (and control group), with intervals.

    docs/science.md section 1, "Oscillation" and "Regions": one point per category
    (ambiguous, clear, then the listed groups) with its bootstrap interval; models are
    offset side by side.

    Args:
        reports: One `OscillationReport` or model name -> report.
        include_groups: Groups to show beside the regions (e.g. ``["text_irrelevant"]``);
            default: every group except ``conflict`` (whose items are the regions).
        title: Figure title.
        path: Where to save.
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in (``ax.figure`` when ``ax`` is given).
    """
    mapping = {"": reports} if isinstance(reports, OscillationReport) else dict(reports)
    rows = []
    for model, rep in mapping.items():
        for r in rep.by_region.itertuples():
            rows.append((model, str(r.region), r.n, r.mean, r.ci_low, r.ci_high))
        groups = include_groups
        if groups is None:
            # Conflict items appear as the two regions; without a balance point there
            # are no regions, so show them as one group rather than not at all.
            hide = ("conflict", "all") if len(rep.by_region) else ("all",)
            groups = [g for g in rep.by_group["group"] if g not in hide]
        for r in rep.by_group.itertuples():
            if r.group in groups:
                label = f"{r.group}\n(all items)" if r.group == "conflict" else f"{r.group}\n(control)"
                rows.append((model, label, r.n, r.mean, r.ci_low, r.ci_high))
    frame = pd.DataFrame(rows, columns=["model", "category", "n", "mean", "ci_low", "ci_high"])
    order = [c for c in (AMBIGUOUS, CLEAR) if c in set(frame["category"])]
    order += [c for c in dict.fromkeys(frame["category"]) if c not in order]
    fig, ax = figure_and_axes(ax, max(4.0, 1.5 + 1.3 * len(order)), 3.8)
    palette = sns.color_palette("colorblind", max(len(mapping), 1))
    width = 0.6 / max(len(mapping), 1)
    for m, (model, color) in enumerate(zip(mapping, palette)):
        part = frame[frame["model"] == model].set_index("category").reindex(order)
        pos = np.arange(len(order)) + (m - (len(mapping) - 1) / 2) * width
        ax.errorbar(
            pos,
            part["mean"],
            yerr=_error_bars(part["mean"], part["ci_low"], part["ci_high"]),
            fmt="o",
            ms=7,
            capsize=4,
            color=color,
            label=model or None,
        )
        for p, (mean, n) in zip(pos, zip(part["mean"], part["n"])):
            if np.isfinite(mean):
                ax.annotate(
                    f"n={int(n)}",
                    (p, mean),
                    textcoords="offset points",
                    xytext=(8, -3),
                    fontsize=7,
                    color="0.3",
                )
    ax.set_xticks(np.arange(len(order)), order)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("mean T/V switches per item")
    if len(mapping) > 1 or next(iter(mapping)):
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return fig


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
    missing = {"layer", "span", "mass"} - set(frame.columns)
    if missing:
        raise ValueError(f"attention frame lacks column(s) {sorted(missing)}")
    unknown = set(frame["span"]) - set(SPAN_ORDER)
    if unknown:
        raise ValueError(f"unknown span(s) {sorted(unknown)}; spans are {', '.join(SPAN_ORDER)}")
    data = frame.assign(
        model=frame.get("model", ""),
        condition=frame.get("condition", ""),
        span=frame["span"].astype(str),
    )
    stats_frame = (
        data.groupby(["model", "condition", "span", "layer"], sort=False)["mass"]
        .agg(["mean", "sem", "count"])
        .reset_index()
    )
    stats_frame["sem"] = stats_frame["sem"].fillna(0.0)
    models = list(dict.fromkeys(data["model"]))
    conditions = list(dict.fromkeys(data["condition"]))
    spans = [s for s in SPAN_ORDER if s in set(data["span"])]
    # Fixed colours per span (the description in purple, the template-and-question text in
    # grey), so that video's orange and the description never look alike.
    palette = sns.color_palette("colorblind", 10)
    colors = {"image": palette[0], "video": palette[1], "audio": palette[2],
              "context": palette[4], "text": palette[7]}
    colors.update({s: palette[9] for s in SPAN_ORDER if s not in colors})
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
