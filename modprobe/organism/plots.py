"""Figures of the organism's training: loss and held-out probe accuracies per step."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import FigureBase


def read_log(path: str | Path) -> dict[str, list[float]]:
    """The training log CSV as columns of floats."""
    with Path(path).open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0]} if rows else {}


def plot_training_curve(log_csv: str | Path, out: str | Path | None = None,
                        fig: FigureBase | None = None) -> FigureBase:
    """Loss (left) and accuracy of every held-out probe set (right) against the step.

    Args:
        log_csv: ``training_log.csv`` written by :func:`modprobe.organism.train.save`.
        out: PNG path to write (None: nothing is written).
        fig: Figure or subfigure to fill with the three panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    from matplotlib import colormaps

    from modprobe.analysis.plotting import panel_figure, save_figure

    log = read_log(log_csv)
    steps = log["step"]
    fig = panel_figure(fig, 15, 4.2)
    ax_loss, ax_vis, ax_txt = fig.subplots(1, 3)
    ax_loss.plot(steps, log["loss"], color="black")
    ax_loss.set(xlabel="step", ylabel="training cross-entropy (nats)", yscale="log",
                title="training loss (mean over the last steps)")
    vision = [k for k in log if k.startswith("acc/vision/")]
    text = [k for k in log if k.startswith("acc/text/")]
    cmap = colormaps["viridis"]
    for i, key in enumerate(vision):
        ax_vis.plot(steps, log[key], color=cmap(i / max(len(vision) - 1, 1)),
                    label=key.removeprefix("acc/vision/"))
    for key in text:
        ax_txt.plot(steps, log[key], label=key.removeprefix("acc/text/"))
    for ax, title in ((ax_vis, "vision-only, per visual tier lv"),
                      (ax_txt, "text-only, per text tier (any allowed color)")):
        ax.axhline(1 / 6, color="gray", lw=0.8, ls=":")
        ax.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1.02), title=title)
        ax.legend(fontsize=8, ncol=2, loc="lower right")
    if out is not None:
        save_figure(fig, Path(out))
    return fig
