"""Redraw the before/after figures of docs/finetune.md from the demonstration's run folders.

    python figures/finetune.py runs/finetune-demo [--out docs/figures]

Reads the folder ``python -m modprobe.finetune.demo --out DIR`` wrote: ``summary.csv``,
``runs/<variant>/log.csv`` (training) and ``eval/<model>/interference`` (held-out
interference runs of the base organism and of each variant), and writes

* ``finetune_flips.png``: flip rate per perturbation and model, with 95% intervals
  (perturbations never used in training are marked; the interference figure);
* ``finetune_relevant_mass.png``: attention mass the answer position gives the relevant
  span, per layer, clean and perturbed, per model (the calibrated layers shaded);
* ``finetune_following.png``: text-following rate and balance point per model;
* ``finetune_training.png``: every loss term per step, per variant;
* ``finetune_radar.png``: the interference radar, one polygon per model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from modprobe.finetune.data import RELEVANT_SPANS
from modprobe.finetune.demo import CAL_LAYERS, TRAIN_PERTURB

#: The interference figures' palette, so a model has one color in every figure.
PALETTE = sns.color_palette("colorblind").as_hex()


def models_of(summary: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(summary["model"]))


def plot_flips(summary: pd.DataFrame, out: Path) -> Path:
    """The interference figure of flip rates (one bar group per perturbation, one color per
    model), with the perturbations never used in training named so."""
    from modprobe.analysis.interference_plots import plot_flip_rates
    from modprobe.analysis.plots import save_figure

    flips = summary[summary["metric"].str.startswith("flip/")].copy()
    flips["perturbation"] = [p if p in TRAIN_PERTURB else f"{p}\nheld out"
                             for p in flips["metric"].str.removeprefix("flip/")]
    flips = flips.rename(columns={"estimate": "delta"})
    figure = plot_flip_rates(flips[["model", "perturbation", "delta", "low", "high"]],
                             title="Flip rate on held-out items (95% cluster intervals; "
                                   f"trained on {' and '.join(TRAIN_PERTURB)})")
    path = out / "finetune_flips.png"
    save_figure(figure, path)
    return path


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


def plot_relevant_mass(demo: Path, models: Sequence[str], out: Path) -> Path:
    panels = [("image", "perturbed", "image-heavy + text perturbation:\nmass on the image"),
              ("text", "clean", "text-heavy, clean:\nmass on the description"),
              ("text", "perturbed", "text-heavy + image perturbation:\nmass on the description")]
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 3.4), sharey=True)
    for i, model in enumerate(models):
        table = relevant_by_layer(demo / "eval" / model / "interference")
        for ax, (relevant, condition, title) in zip(axes, panels):
            part = table[(table["relevant"] == relevant) & (table["condition"] == condition)]
            ax.plot(part["layer"], part["mass"], marker="o", color=PALETTE[i % len(PALETTE)],
                    label=model)
            ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.axvspan(min(CAL_LAYERS) - 0.3, max(CAL_LAYERS) + 0.3, color="0.92", zorder=0)
        ax.set_xlabel("layer (calibrated layers shaded)")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("attention mass (mean over heads, items)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    path = out / "finetune_relevant_mass.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_following(summary: pd.DataFrame, out: Path) -> Path:
    models = models_of(summary)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0))
    for ax, metric, label in ((axes[0], "following/TFR", "text-following rate (conflicts)"),
                              (axes[1], "following/balance_point", "balance point (dH_rel)")):
        part = summary[summary["metric"] == metric].set_index("model").reindex(models)
        y = np.arange(len(models))
        est = part["estimate"].to_numpy(dtype=float)
        low, high = part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float)
        ok = np.isfinite(est)
        ax.errorbar(est[ok], y[ok], xerr=[est[ok] - low[ok], high[ok] - est[ok]], fmt="o",
                    color="black", capsize=3)
        for j in np.flatnonzero(~ok):
            ax.text(0.02, y[j], "no crossing", va="center", transform=ax.get_yaxis_transform())
        ax.set_yticks(y, models)
        ax.set_xlabel(label)
        ax.invert_yaxis()
    axes[1].axvline(0, color="0.6", lw=0.8)
    fig.tight_layout()
    path = out / "finetune_following.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_training(demo: Path, out: Path) -> Path:
    from modprobe.finetune.demo import VARIANTS

    runs = sorted((p for p in (demo / "runs").iterdir() if (p / "log.csv").is_file()),
                  key=lambda p: (VARIANTS.index(p.name) if p.name in VARIANTS else 99, p.name))
    terms = ["answer", "calibration", "consistency", "adversarial"]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.0 * len(runs), 2.8), squeeze=False)
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
    fig.tight_layout()
    path = out / "finetune_training.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_radar(demo: Path, models: Sequence[str], out: Path) -> Path:
    """The interference radar (accuracy per condition), one polygon per model."""
    from modprobe.analysis.interference_plots import plot_radar as radar
    from modprobe.analysis.plots import save_figure
    from modprobe.study.interference_report import load_run

    values = {m: load_run(demo / "eval" / m / "interference")[0]["radar"] for m in models}
    axes = list(dict.fromkeys(a for v in values.values() for a in v))
    path = out / "finetune_radar.png"
    save_figure(radar(values, axes=axes, title="Held-out accuracy, base and fine-tuned"), path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", help="folder written by python -m modprobe.finetune.demo")
    parser.add_argument("--out", default="docs/figures", help="where the PNGs go")
    args = parser.parse_args(argv)
    demo, out = Path(args.demo), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = pd.read_csv(demo / "summary.csv")
    models = models_of(summary)
    written = [plot_flips(summary, out), plot_relevant_mass(demo, models, out),
               plot_following(summary, out), plot_training(demo, out),
               plot_radar(demo, models, out)]
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
