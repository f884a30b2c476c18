"""Redraw the before/after figures of docs/finetune.md from the demonstration's run folders.

    python figures/finetune.py runs/finetune-demo [--out docs/figures]

Reads the folder ``python -m modprobe.finetune.demo --out DIR`` wrote: ``summary.csv``,
``runs/<variant>/log.csv`` (training) and ``eval/<model>/interference`` (held-out
interference runs of the base organism and of each variant), and writes

* ``finetune_flips.png``: flip rate per perturbation and model, with 95% intervals
  (perturbations never used in training are marked);
* ``finetune_relevant_mass.png``: attention mass the answer position gives the relevant
  span, per layer, clean and perturbed, per model (the calibrated layers shaded);
* ``finetune_following.png``: text-following rate and balance point per model;
* ``finetune_training.png``: every loss term per step, per variant;
* ``finetune_radar.png``: the interference radar with one polygon per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from modprobe.finetune.data import RELEVANT_SPANS  # noqa: E402
from modprobe.finetune.demo import CAL_LAYERS, EVAL_PERTURB, TRAIN_PERTURB  # noqa: E402

PALETTE = ["#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def models_of(summary: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(summary["model"]))


def plot_flips(summary: pd.DataFrame, out: Path) -> Path:
    models = models_of(summary)
    names = [p for p in EVAL_PERTURB if f"flip/{p}" in set(summary["metric"])]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        part = summary[summary["model"] == model].set_index("metric")
        est = np.array([part.loc[f"flip/{p}", "estimate"] for p in names], dtype=float)
        low = np.array([part.loc[f"flip/{p}", "low"] for p in names], dtype=float)
        high = np.array([part.loc[f"flip/{p}", "high"] for p in names], dtype=float)
        x = np.arange(len(names)) + (i - (len(models) - 1) / 2) * width
        ax.bar(x, est, width, color=PALETTE[i % len(PALETTE)], label=model)
        ax.errorbar(x, est, yerr=[est - low, high - est], fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2)
    labels = [p if p in TRAIN_PERTURB else f"{p}\n(held out)" for p in names]
    ax.set_xticks(np.arange(len(names)), labels)
    ax.set_ylabel("flip rate (answer changed)")
    ax.set_title("Interference on held-out items: flip rate per perturbation, 95% cluster "
                 "intervals", fontsize=10)
    ax.legend(fontsize=8, ncol=len(models), loc="upper left")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    path = out / "finetune_flips.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def relevant_by_layer(folder: Path) -> pd.DataFrame:
    """Mean mass on the relevant span per (relevant, clean/perturbed, layer)."""
    attention = pd.read_csv(folder / "attention.csv")
    items = pd.read_csv(folder / "items.csv", keep_default_na=False, na_values=[""])
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
    runs = sorted(p for p in (demo / "runs").iterdir() if (p / "log.csv").is_file())
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


def plot_radar(demo: Path, models: Sequence[str], out: Path) -> Path | None:
    from modprobe.study.interference_report import draw_figures, load_run

    runs = {model: load_run(demo / "eval" / model / "interference") for model in models}
    drawn = draw_figures(out / "_radar", runs)
    radar = [p for p in drawn if "radar" in p.name]
    if not radar:
        return None
    target = out / "finetune_radar.png"
    radar[0].replace(target)
    for p in (out / "_radar").iterdir():
        p.unlink()
    (out / "_radar").rmdir()
    return target


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
        if path is not None:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
