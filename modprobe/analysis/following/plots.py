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
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from modprobe.analysis.following.law import Law
from modprobe.analysis.following.oscillation import (
    AMBIGUOUS,
    CLEAR,
    OscillationReport,
)
from modprobe.analysis.plotting import (
    PathLike,
    error_bars,
    figure_and_axes,
    save_figure,
    unbounded_bars,
)


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
        _draw_curves(ax, law, color, name, show_bins, show_isotonic, show_band)
        monotone_label = f"{name + ' ' if name and len(mapping) > 1 else ''}monotone"
        _draw_balance_points(ax, law, color, show_isotonic, monotone_label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(text-following)")
    axis_label = x_label or (first.x_label if first is not None else "x")
    ax.set_xlabel(r"$\Delta H_{rel}$" if axis_label == "dH_rel" else axis_label)
    if title:
        ax.set_title(title)
    ax.legend(frameon=True, fontsize=8, loc="best")
    save_figure(fig, path)
    return fig


def _draw_curves(ax: Axes, law: Law, color: Any, name: str, show_bins: bool,
                 show_isotonic: bool, show_band: bool) -> None:
    """One model's logistic curve (labelled with its balance point), bands, bins, isotonic."""
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
            yerr=error_bars(b["rate"], b["ci_low"], b["ci_high"]),
            fmt="o",
            ms=4,
            color=color,
            ecolor=color,
            elinewidth=1,
            capsize=2,
            alpha=0.85,
        )


def _draw_balance_points(ax: Axes, law: Law, color: Any, show_isotonic: bool,
                         monotone_label: str) -> None:
    """The logistic balance point at P = 0.5 and, with ``show_isotonic``, the monotone one.

    Each is drawn with its interval as a horizontal error bar; a curve that does not
    cross 0.5 gets no marker.
    """
    mono = law.balance_point_monotone
    if show_isotonic and mono is not None and mono.crosses:
        # Drawn just below 0.5 so the two intervals do not hide each other.
        ax.errorbar([mono.value], [0.46],
                    xerr=error_bars([mono.value], [mono.ci_low], [mono.ci_high]),
                    fmt="o", ms=7, mfc="white", color=color, ecolor=color, elinewidth=1,
                    capsize=3, zorder=4, label=f"{monotone_label} x*={mono.value:.2f}")
        unbounded_bars(ax, [0.46], [mono.value], [mono.ci_low], [mono.ci_high], color,
                       vertical=False)
    bp = law.balance_point
    if bp.crosses:
        ax.errorbar(
            [bp.value],
            [0.5],
            xerr=error_bars([bp.value], [bp.ci_low], [bp.ci_high]),
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
        unbounded_bars(ax, [0.5], [bp.value], [bp.ci_low], [bp.ci_high], color, vertical=False)


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
            yerr=error_bars(part["mean"], part["ci_low"], part["ci_high"]),
            fmt="o",
            ms=7,
            capsize=4,
            color=color,
            label=model or None,
        )
        unbounded_bars(ax, pos, part["mean"], part["ci_low"], part["ci_high"], color)
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


