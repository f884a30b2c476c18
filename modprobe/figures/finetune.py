"""The before/after figures of docs/finetune.md, from the demonstration's run folders.

    python figures/finetune.py runs/finetune-demo [--out docs/figures]

Each ``plot_*`` function draws into the caller's ``ax=`` (or ``fig=`` for a figure of
several panels) or a new figure and returns the figure it drew in; :func:`write_figures`
writes them all. Reads the folder ``modprobe finetune-demo --out DIR`` wrote: ``summary.csv``,
``runs/<variant>/log.csv`` (training) and ``eval/<model>/interference`` (held-out
interference runs of the base organism and of each variant), and writes

* ``finetune_flips.png``: flip rate per perturbation and model, with 95% intervals
  (perturbations never used in training are marked; the interference figure);
* ``finetune_relevant_mass.png``: attention mass the answer position gives the relevant
  span, per layer, clean and perturbed, per model (layers 2-3, where the organism decides, shaded);
* ``finetune_following.png``: text-following rate and balance point per model;
* ``finetune_training.png``: every loss term per step, per variant;
* ``finetune_radar.png``: the interference radar, one polygon per model.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase
from matplotlib.ticker import MaxNLocator

from modprobe.analysis.interference.plots import plot_flip_rates
from modprobe.analysis.interference.plots import plot_radar as radar
from modprobe.analysis.plotting import panel_figure, save_figure, unbounded_bars
from modprobe.finetune.data import RELEVANT_SPANS
from modprobe.finetune.demo import CAL_LAYERS, TRAIN_PERTURB, VARIANTS
from modprobe.run import load_run

#: The interference figures' palette, so a model has one color in every figure.
PALETTE = sns.color_palette("colorblind").as_hex()


def models_of(summary: pd.DataFrame) -> list[str]:
    """The models of a demo's ``summary.csv``, in order (base first)."""
    return list(dict.fromkeys(summary["model"]))


def plot_flips(summary: pd.DataFrame, ax: Axes | None = None) -> FigureBase:
    """The interference figure of flip rates, for the fine-tuning demo.

    One bar group per perturbation, one color per model; the perturbations never used in
    training are named so.

    Args:
        summary: The demo's ``summary.csv``.
        ax: Axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in.
    """
    flips = summary[summary["metric"].str.startswith("flip/")].copy()
    flips["perturbation"] = [p if p in TRAIN_PERTURB else f"{p}\nnot trained on"
                             for p in flips["metric"].str.removeprefix("flip/")]
    flips = flips.rename(columns={"estimate": "delta"})
    return plot_flip_rates(flips[["model", "perturbation", "delta", "low", "high"]],
                           title="Flip rate on held-out items (95% cluster intervals; "
                                 f"trained on {' and '.join(TRAIN_PERTURB)})", ax=ax)


def relevant_by_layer(folder: Path) -> pd.DataFrame:
    """Mean mass on the relevant span per (relevant, clean/perturbed, layer)."""
    from modprobe.study.runfolder import read_table

    attention = read_table(folder / "attention.csv")  # or .parquet: the run's format
    items = read_table(folder / "items.csv")
    meta = items.drop_duplicates("id").set_index("id")
    attention = attention.join(meta[["relevant"]], on="id")
    attention = attention[attention["span"] == attention["relevant"].map(RELEVANT_SPANS)]
    attention["condition"] = np.where(attention["perturbation"] == "clean", "clean", "perturbed")
    return attention.groupby(["relevant", "condition", "layer"], as_index=False)["mass"].mean()


def plot_relevant_mass(demo: Path, models: Sequence[str],
                       fig: FigureBase | None = None) -> FigureBase:
    """Attention mass on the relevant span per layer, clean and perturbed, per model.

    Args:
        demo: The demo folder.
        models: Models to draw (``eval/<model>/interference`` in ``demo``).
        fig: Figure or subfigure to fill with the three panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    panels = [("image", "perturbed", "image-heavy + text perturbation:\nmass on the image"),
              ("text", "clean", "text-heavy, clean:\nmass on the description"),
              ("text", "perturbed", "text-heavy + image perturbation:\nmass on the description")]
    fig = panel_figure(fig, 11, 3.4)
    axes = fig.subplots(1, len(panels), sharey=True)
    for i, model in enumerate(models):
        table = relevant_by_layer(Path(demo) / "eval" / model / "interference")
        for ax, (relevant, condition, title) in zip(axes, panels):
            part = table[(table["relevant"] == relevant) & (table["condition"] == condition)]
            ax.plot(part["layer"], part["mass"], marker="o", color=PALETTE[i % len(PALETTE)],
                    label=model)
            ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.axvspan(min(CAL_LAYERS) - 0.3, max(CAL_LAYERS) + 0.3, color="0.92", zorder=0)
        ax.set_xlabel(f"layer ({min(CAL_LAYERS)}-{max(CAL_LAYERS)}, where the organism decides, shaded)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("attention mass (mean over heads, items)")
    axes[-1].legend(fontsize=8)
    return fig


def plot_following(summary: pd.DataFrame, fig: FigureBase | None = None) -> FigureBase:
    """Text-following rate and balance point per model, with intervals.

    Args:
        summary: The demo's ``summary.csv``.
        fig: Figure or subfigure to fill with the two panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    models = models_of(summary)
    fig = panel_figure(fig, 9, 3.0)
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "following/TFR", "text-following rate (conflicts)"),
                              (axes[1], "following/balance_point", "balance point (dH_rel)")):
        part = summary[summary["metric"] == metric].set_index("model").reindex(models)
        y = np.arange(len(models))
        est = part["estimate"].to_numpy(dtype=float)
        low, high = part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float)
        ok = np.isfinite(est)
        ax.errorbar(est[ok], y[ok], xerr=[est[ok] - low[ok], high[ok] - est[ok]], fmt="o",
                    color="black", capsize=3)
        unbounded_bars(ax, y[ok], est[ok], low[ok], high[ok], "black", vertical=False)
        for j in np.flatnonzero(~ok):
            ax.text(0.02, y[j], "no crossing", va="center", transform=ax.get_yaxis_transform())
        ax.set_yticks(y, models)
        ax.set_xlabel(label)
        ax.invert_yaxis()
    axes[1].axvline(0, color="0.6", lw=0.8)
    return fig


def plot_training(demo: Path, fig: FigureBase | None = None) -> FigureBase:
    """Every loss term per step (running mean), one panel per variant.

    Args:
        demo: The demo folder (``runs/<variant>/log.csv``).
        fig: Figure or subfigure to fill with the panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    runs = sorted((p for p in (Path(demo) / "runs").iterdir() if (p / "log.csv").is_file()),
                  key=lambda p: (VARIANTS.index(p.name) if p.name in VARIANTS else 99, p.name))
    terms = ["answer", "calibration", "consistency", "adversarial"]
    fig = panel_figure(fig, 3.0 * max(len(runs), 1), 2.8)
    axes = fig.subplots(1, max(len(runs), 1), squeeze=False)
    window = 1
    for ax, run in zip(axes[0], runs):
        log = pd.read_csv(run / "log.csv")
        window = max(len(log) // 15, 1)
        for j, term in enumerate(terms):
            if term in log:
                smooth = log[term].rolling(window, min_periods=1).mean()
                ax.plot(log["step"], smooth, color=PALETTE[(j + 1) % len(PALETTE)], label=term)
        ax.set_title(run.name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"loss (running mean of {window})")
    return fig


def plot_radar(demo: Path, models: Sequence[str], ax: Axes | None = None) -> FigureBase:
    """The interference radar (accuracy per condition), one polygon per model.

    Args:
        demo: The demo folder.
        models: Models to draw.
        ax: Polar axes to draw in (default: a new figure's).

    Returns:
        The figure drawn in.
    """
    # a run's radar is a list of {axis, accuracy} records, one per spoke
    values = {m: {spoke["axis"]: spoke["accuracy"]
                  for spoke in load_run(Path(demo) / "eval" / m / "interference").summary["radar"]}
              for m in models}
    axes = list(dict.fromkeys(a for v in values.values() for a in v))
    return radar(values, axes=axes, title="Held-out accuracy, base and fine-tuned", ax=ax)


def write_figures(demo: Path, out: Path) -> list[Path]:
    """Write every figure of the demo into ``out``; returns the files.

    Args:
        demo: The demo folder.
        out: The folder for the PNGs (created if needed).

    Returns:
        The PNG files written.
    """
    demo, out = Path(demo), Path(out)
    summary = pd.read_csv(demo / "summary.csv")
    models = models_of(summary)
    drawn = {"finetune_flips": plot_flips(summary),
             "finetune_relevant_mass": plot_relevant_mass(demo, models),
             "finetune_following": plot_following(summary),
             "finetune_training": plot_training(demo),
             "finetune_radar": plot_radar(demo, models)}
    return [path for name, fig in drawn.items() for path in save_figure(fig, out / f"{name}.png")]


def main(argv: Sequence[str] | None = None) -> int:
    """``python figures/finetune.py DEMO [--out DIR]``; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", help="folder written by modprobe finetune-demo")
    parser.add_argument("--out", default="docs/figures", help="where the PNGs go")
    args = parser.parse_args(argv)
    for path in write_figures(Path(args.demo), Path(args.out)):
        print(path)
    return 0

