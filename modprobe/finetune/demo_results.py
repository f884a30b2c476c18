"""Reading the fine-tuning demonstration's evaluations: summary, paired differences.

The tables of ``docs/finetune.md`` (:mod:`modprobe.finetune.demo` runs the models): each
model's accuracy, flip rates, attention on the relevant span and following metrics
(:func:`summarise`), and each variant minus the base item by item
(:func:`paired_differences`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from modprobe.finetune.demo import DemoConfig

#: Layers where the demo reads the attention on the relevant span (the organism decides
#: in layers 2-3).
CAL_LAYERS: tuple[int, ...] = (2, 3)

def interference_folder(config: DemoConfig, name: str, draw: int = 0) -> Path:
    """The folder of model ``name``'s interference run under perturbation draw ``draw``.

    Args:
        config: The demo's options (``out``).
        name: The model (``base`` or a variant).
        draw: The perturbation draw; draw 0 is the run the summary reads.

    Returns:
        ``OUT/eval/NAME/interference`` (draw 0) or ``.../interference-drawN``.
    """
    folder = Path(config.out) / "eval" / name
    return folder / ("interference" if draw == 0 else f"interference-draw{draw}")


def relevant_mass(folder: Path, layers: Sequence[int] = CAL_LAYERS, seed: int = 0
                  ) -> pd.DataFrame:
    """Attention on the relevant span at ``layers``, per task kind, clean and perturbed.

    From an interference run folder's ``attention.csv`` (head-averaged mass per item,
    condition, layer and span), per item and condition, averaged over ``layers``:

    * ``mass``: the share of all attention on the item's relevant span (``image`` for
      image-heavy items, ``context`` for text-heavy ones);
    * ``share``: its share of the attention to the two content spans, image + context
      (what the cross-entropy calibration loss pulls toward 1; the question and chat
      template, where much attention sinks, left out). Only defined where both spans
      exist, i.e. under a perturbation.

    Then the mean over items with a cluster-bootstrap interval.

    Args:
        folder: An interference run folder.
        layers: The layers averaged over.
        seed: Seed of the bootstrap.

    Returns:
        One row per (relevant, condition, measure): ``relevant, condition, measure,
        estimate, low, high, n``; condition is ``clean`` or ``perturbed`` (every
        perturbation pooled; clusters keep an item's rows together).
    """
    from modprobe.stats import mean_interval
    from modprobe.study.runfolder import read_table

    attention = read_table(folder / "attention.csv")  # or .parquet: the run's format
    items = read_table(folder / "items.csv")
    meta = items.drop_duplicates("id").set_index("id")
    attention = attention[attention["layer"].isin(list(layers))]
    wide_mass = attention.pivot_table(index=["id", "perturbation", "layer"], columns="span",
                                      values="mass", observed=True).reset_index()
    wide_mass = wide_mass.join(meta[["relevant", "cluster"]], on="id")
    relevant = np.where(wide_mass["relevant"] == "image", wide_mass["image"],
                        wide_mass["context"])
    wide_mass["mass"] = relevant
    content = wide_mass["image"] + wide_mass["context"]
    wide_mass["share"] = np.where(
        (wide_mass["image"] > 0) & (wide_mass["context"] > 0), relevant / content, np.nan)
    per_item = wide_mass.groupby(["id", "perturbation", "relevant", "cluster"],
                                 as_index=False)[["mass", "share"]].mean()
    rows = []
    for (kind, clean), part in per_item.groupby(
            ["relevant", per_item["perturbation"].eq("clean")]):
        for measure in ("mass", "share"):
            if part[measure].isna().all():
                continue
            interval = mean_interval(part[measure].to_numpy(), part["cluster"].to_numpy(),
                                     kind="continuous", seed=seed)
            rows.append({"relevant": kind, "condition": "clean" if clean else "perturbed",
                         "measure": measure, "estimate": interval.estimate,
                         "low": interval.low, "high": interval.high,
                         "n": int(part[measure].notna().sum())})
    return pd.DataFrame(rows)


def summarise(config: DemoConfig, names: Sequence[str]) -> pd.DataFrame:
    """Collect every model's metrics into one table, written to ``OUT/summary.csv``.

    Args:
        config: The demo's options.
        names: The models evaluated (``base`` and the variants), in table order.

    Returns:
        One row per model and metric (accuracy and flip per perturbation, relevant mass
        and share, TFR, balance point): ``model, metric, estimate, low, high, n``.
    """
    import json

    from modprobe.io import write_csv

    rows: list[dict[str, Any]] = []
    for name in names:
        folder = Path(config.out) / "eval" / name
        summary = json.loads((folder / "interference" / "summary.json").read_text())
        for cond in summary["conditions"]:
            rows.append({"model": name, "metric": f"accuracy/{cond['perturbation']}",
                         **_interval(cond["accuracy"])})
            if cond.get("delta"):
                rows.append({"model": name, "metric": f"flip/{cond['perturbation']}",
                             **_interval(cond["delta"])})
        for rec in relevant_mass(folder / "interference", seed=config.seed).to_dict("records"):
            metric = f"{rec['measure']}/{rec['relevant']}-heavy/{rec['condition']}"
            rows.append({"model": name, "metric": metric, "estimate": rec["estimate"],
                         "low": rec["low"], "high": rec["high"], "n": rec["n"]})
        study = json.loads((folder / "study" / "summary.json").read_text())
        if "tfr" in study:
            rows.append({"model": name, "metric": "following/TFR", "estimate": study["tfr"],
                         "low": study["tfr_ci"][0], "high": study["tfr_ci"][1],
                         "n": study.get("n_text", 0) + study.get("n_vision", 0)})
        bp = study.get("balance_point") or {}
        rows.append({"model": name, "metric": "following/balance_point",
                     "estimate": bp.get("value", np.nan), "low": (bp.get("ci") or [np.nan])[0],
                     "high": (bp.get("ci") or [np.nan, np.nan])[1], "n": np.nan})
    table = pd.DataFrame(rows)
    write_csv(Path(config.out) / "summary.csv", table)
    return table


def _interval(record: dict[str, Any]) -> dict[str, Any]:
    return {"estimate": record.get("estimate"), "low": record.get("low"),
            "high": record.get("high"), "n": record.get("n")}


def wide(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Pivot :func:`summarise`'s table for reading: metrics as rows, models as columns.

    Args:
        table: :func:`summarise`'s table.
        metrics: The metrics to keep, in order (default all).

    Returns:
        Cells ``estimate [low, high]`` (two decimals), ``none`` without an estimate.
    """
    def cell(row: pd.Series) -> str:
        if not np.isfinite(row["estimate"]):
            return "none"
        if not (np.isfinite(row["low"]) and np.isfinite(row["high"])):
            return f"{row['estimate']:.2f}"
        return f"{row['estimate']:.2f} [{row['low']:.2f}, {row['high']:.2f}]"

    shown = table if metrics is None else table[table["metric"].isin(list(metrics))]
    out = shown.assign(cell=shown.apply(cell, axis=1)).pivot(index="metric", columns="model",
                                                             values="cell")
    order = [m for m in dict.fromkeys(shown["model"])]
    return out[order].reindex(list(dict.fromkeys(shown["metric"])))


def paired_differences(config: DemoConfig, names: Sequence[str]) -> pd.DataFrame:
    """Each variant minus the base, item by item, per perturbation (``paired.csv``).

    Per item, the flip indicator averaged over the draws, for the variant and the base;
    their difference's mean with a cluster-bootstrap interval and the exact two-sided
    cluster sign-flip p-value (:func:`modprobe.stats.signflip.sign_flip_p`).

    Args:
        config: The demo's options (``draws``, ``seed``, ``out``).
        names: The variants compared with ``base``.

    Returns:
        One row per variant and perturbation: ``flip``, ``flip_base``, ``difference``
        with ``low`` and ``high``, ``p_sign_flip``, ``n_items``, ``n_clusters``, ``draws``.
    """
    from modprobe.io import write_csv
    from modprobe.stats import mean_interval
    from modprobe.stats.signflip import sign_flip_p
    from modprobe.study.runfolder import read_table

    def flips(name: str) -> pd.DataFrame:
        parts = [read_table(interference_folder(config, name, d) / "flips.csv")
                 for d in range(config.draws)]
        return (pd.concat(parts).groupby(["perturbation", "id", "cluster"], as_index=False)
                ["flipped"].mean())

    base = flips("base")
    rows = []
    for name in names:
        paired = flips(name).merge(base, on=["perturbation", "id", "cluster"],
                                   suffixes=("", "_base"))
        for perturbation, part in paired.groupby("perturbation"):
            diff = (part["flipped"] - part["flipped_base"]).to_numpy(float)
            clusters = part["cluster"].to_numpy()
            interval = mean_interval(diff, clusters, kind="paired", seed=config.seed)
            rows.append({"model": name, "perturbation": perturbation,
                         "flip": float(part["flipped"].mean()),
                         "flip_base": float(part["flipped_base"].mean()),
                         "difference": interval.estimate, "low": interval.low,
                         "high": interval.high, "p_sign_flip": sign_flip_p(diff, clusters),
                         "n_items": len(part), "n_clusters": int(pd.Series(clusters).nunique()),
                         "draws": config.draws})
    table = pd.DataFrame(rows)
    write_csv(Path(config.out) / "paired.csv", table)
    return table
