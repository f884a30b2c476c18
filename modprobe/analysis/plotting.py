"""Figure helpers shared by every analysis's plots: new figures, axes to draw in, saving.

Conventions (kept by `modprobe.analysis.following.plots`, `modprobe.analysis.interference.plots`,
`modprobe.analysis.sabotage.plots` and `modprobe.analysis.mma.measures`): every plotting
function draws into the caller's ``ax=`` (or ``fig=`` for multi-panel figures), else into a
fresh `matplotlib.figure.Figure` on the Agg canvas without pyplot (nothing global changes,
nothing needs closing); it returns the figure it drew in and saves it when ``path`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D

from modprobe.spans import SPAN_NAMES

#: Span order of every modality axis in modprobe (``modprobe.spans.SPAN_NAMES``).
SPAN_ORDER: tuple[str, ...] = SPAN_NAMES


#: Legend labels of the spans: ``context`` is the description, ``text`` the rest of the
#: text (all text = context + text).
SPAN_LABELS: dict[str, str] = {"context": "context (description)",
                               "text": "text (question, template)"}


def span_color(span: str) -> Any:
    """The color a span gets in every per-span figure (colorblind palette).

    Args:
        span: A span name (``image``, ``video``, ``audio``, ``context``, ``text``).

    Returns:
        An RGB tuple; a grey for a span without its own color.
    """
    palette = sns.color_palette("colorblind", 10)
    index = {"image": 0, "video": 1, "audio": 2, "context": 4, "text": 7}.get(span, 9)
    return palette[index]


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


def error_bars(center: Any, low: Any, high: Any) -> np.ndarray:
    """Error-bar lengths for matplotlib's ``yerr`` from point estimates and interval bounds.

    Args:
        center: The ``n`` point estimates.
        low: The ``n`` lower bounds.
        high: The ``n`` upper bounds.

    Returns:
        A ``2 x n`` array: distances below and above each estimate, clipped at 0 (a
        percentile-bootstrap interval need not contain its estimate). NaN bounds stay
        NaN, and matplotlib draws no bar for them; it draws none for infinite ones
        either, which `unbounded_bars` then draws.
    """
    c, lo, hi = (np.asarray(v, dtype=np.float64) for v in (center, low, high))
    return np.maximum(np.stack([c - lo, hi - c]), 0.0)


def unbounded_bars(ax: Axes, x: Any, center: Any, low: Any, high: Any, color: Any,
                   vertical: bool = True) -> None:
    """Draw the error bars with an infinite bound, which matplotlib leaves out.

    An interval can be unbounded (a bootstrap over very few clusters); without its bar
    the point would read as a precise estimate. Each such bar runs from its finite
    bound, or the edge of the axes, to the edge, without a cap, and leaves the axes'
    limits to the finite data.

    Args:
        ax: The axes the `errorbar` call drew on.
        x: The ``n`` positions.
        center: The ``n`` point estimates.
        low: The ``n`` lower bounds.
        high: The ``n`` upper bounds.
        color: The bars' color.
        vertical: Bars along y at positions on x (``yerr``); False: along x at
            positions on y (``xerr``).
    """
    c, lo, hi = (np.asarray(v, dtype=np.float64) for v in (center, low, high))
    for xi, ci, li, ui in zip(np.asarray(x, dtype=np.float64), c, lo, hi):
        if np.isfinite(ci) and (np.isinf(li) or np.isinf(ui)):
            ends = np.clip([li, ui], -1e300, 1e300)
            # an artist (not ax.plot) so that autoscaling ignores the 1e300 ends
            ax.add_artist(Line2D(*(([xi, xi], ends) if vertical else (ends, [xi, xi])),
                                 color=color, lw=1.5))
