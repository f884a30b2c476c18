r"""Modality interference from tables: accuracy, the flip rate delta, the attention shift.

Tables in, no model code. A prediction table has one row per item and condition::

    id, perturbation, answer, gold [, cluster] [, options] [, relevant]

``perturbation`` is ``clean`` for the unperturbed input. The causal effect of a
perturbation (docs/science.md section 4) is the flip rate

    delta = mean over items of 1[answer under the perturbation != clean answer],

paired per item. Every interval comes from :func:`modprobe.stats.mean_interval` over
per-item values (Wilson for independent items, a cluster bootstrap given clusters).

With perturbation draws (a ``draw`` column: every item clean and perturbed once per
draw, each draw with its own seed), a flip pairs a perturbed answer with the clean answer
of the same item and draw, each item's correctness and flips are averaged over its
draws, and the intervals are computed over these per-item averages. Draws are seeded per
(draw seed, perturbation, item), so they are independent across items: the draw-to-draw
variance is then part of each item's (and each cluster's) variation, which the cluster
bootstrap resamples. ``InterferenceReport.per_draw`` gives every draw's own rates.

```python
from modprobe.analysis.interference.effects import analyze_interference, read_predictions
report = analyze_interference(read_predictions(table), cluster="cluster")
print("\n".join(report.lines()))
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.interference.predictions import (
    CLEAN,
    TABLE_COLUMNS,
    UNREADABLE,
    InterferenceTableError,
    read_predictions,
)
from modprobe.stats import DEFAULT_RESAMPLES, Interval, mean_interval

__all__ = ["CLEAN", "HEAVY", "TABLE_COLUMNS", "UNREADABLE", "ConditionResult",
           "InterferenceReport", "InterferenceTableError", "analyze_interference",
           "attention_shift", "read_predictions"]

HEAVY = {"image": "image-heavy", "text": "text-heavy"}


@dataclass(frozen=True)
class ConditionResult:
    """Accuracy and flip rate of one condition.

    Attributes:
        perturbation: ``"clean"`` or a perturbation name.
        accuracy: Share of correct answers (an unreadable answer is not correct).
        delta: Flip rate against the same items' clean answers (None for clean).
        clean_accuracy: Clean accuracy of the same items (None for clean).
        n: Items.
        accuracy_drop: Paired clean minus perturbed accuracy of the same items, from
            per-item differences (None for clean).
        n_unreadable: Answers that named no option (multiple choice) or nothing.
    """

    perturbation: str
    accuracy: Interval
    delta: Interval | None
    clean_accuracy: Interval | None
    n: int
    n_unreadable: int
    accuracy_drop: Interval | None = None

    def line(self) -> str:
        """``MD: accuracy=0.792 ci=[0.700, 0.860] delta=0.125 ci=[0.070, 0.210] n=48``."""
        text = f"{self.perturbation}: accuracy={_interval_text(self.accuracy)}"
        if self.delta is not None:
            text += f" delta={_interval_text(self.delta)}"
        return f"{text} n={self.n}"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (intervals as dicts, None where absent)."""
        return {"perturbation": self.perturbation, "n": self.n,
                "n_unreadable": self.n_unreadable, "accuracy": self.accuracy.to_dict(),
                "delta": self.delta.to_dict() if self.delta else None,
                "clean_accuracy": self.clean_accuracy.to_dict() if self.clean_accuracy
                else None,
                "accuracy_drop": self.accuracy_drop.to_dict() if self.accuracy_drop else None}


def _interval_text(interval: Interval) -> str:
    def num(value: float) -> str:
        return f"{value:.3f}" if math.isfinite(value) else "nan"

    return f"{num(interval.estimate)} ci=[{num(interval.low)}, {num(interval.high)}]"


@dataclass
class InterferenceReport:
    """What :func:`analyze_interference` found.

    Attributes:
        conditions: One result per condition, clean first.
        per_item: One row per item and perturbed condition: ``id, perturbation, correct,
            clean_correct, flipped`` (and ``cluster``).
        cluster: The cluster column used, or None (items independent).
        notes: Caveats printed with the lines (unreadable answers, clusters).
        per_draw: One row per condition and draw: ``perturbation, draw, n, accuracy,
            delta`` (delta NaN for clean); a single draw 0 without a ``draw`` column.
        n_draws: Perturbation draws per item (the most any item has).
    """

    conditions: list[ConditionResult]
    per_item: pd.DataFrame
    cluster: str | None = None
    notes: list[str] = field(default_factory=list)
    per_draw: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_draws: int = 1

    def lines(self) -> list[str]:
        """One line per condition (the CLI prints these), then the notes."""
        return [c.line() for c in self.conditions] + [f"note: {n}" for n in self.notes]

    def condition(self, name: str) -> ConditionResult:
        """The result of condition ``name`` (``KeyError`` naming the conditions there are)."""
        for result in self.conditions:
            if result.perturbation == name:
                return result
        raise KeyError(f"no condition {name!r}; have {[c.perturbation for c in self.conditions]}")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values: conditions, cluster, draws, notes and lines."""
        return {"conditions": [c.to_dict() for c in self.conditions], "cluster": self.cluster,
                "n_draws": self.n_draws, "per_draw": self.per_draw.to_dict("records"),
                "notes": list(self.notes), "lines": self.lines()}


def analyze_interference(table: pd.DataFrame, cluster: str | None = None,
                         order: Sequence[str] | None = None, confidence: float = 0.95,
                         n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> InterferenceReport:
    """Accuracy per condition and the paired flip rate per perturbation.

    Args:
        table: Rows with ``id, perturbation, category, correct`` (as
            :func:`read_predictions` or the interference runner make them).
        cluster: Column of cluster labels (intervals resample clusters), or None.
        order: Condition order of the result (default: clean, then as first seen).
        confidence: Nominal coverage of every interval.
        n_bootstrap: Bootstrap replicates (cluster intervals).
        seed: Bootstrap seed.
    """
    if cluster is not None and cluster not in table.columns:
        raise InterferenceTableError(f"no column {cluster!r} to take clusters from")
    table = table.assign(draw=table["draw"] if "draw" in table.columns else 0)
    clean = table[table["perturbation"] == CLEAN].set_index(["id", "draw"])
    names = [CLEAN] + [p for p in dict.fromkeys(table["perturbation"]) if p != CLEAN]
    if order is not None:
        names = [p for p in order if p in names] + [p for p in names if p not in order]
    n_draws = int(table.groupby("id")["draw"].nunique().max())

    def interval(values: Any, rows: pd.DataFrame, kind: str = "rate") -> Interval:
        """Interval of a mean over items, each item first averaged over its draws.

        Args:
            values: One value per row of ``rows`` (a 0/1 outcome or a paired difference).
            rows: The table rows the values belong to (their ``id`` and cluster).
            kind: :func:`~modprobe.stats.mean_interval`'s kind of the quantity.
        """
        frame = pd.DataFrame({"id": rows["id"].to_numpy(),
                              "value": np.asarray(values, dtype=float)})
        if cluster:
            frame["cluster"] = rows[cluster].astype(str).to_numpy()
        per_item = frame.groupby("id", sort=False).agg(
            value=("value", "mean"), **({"cluster": ("cluster", "first")} if cluster else {}))
        return mean_interval(per_item["value"].to_numpy(),
                             per_item["cluster"].to_numpy() if cluster else None,
                             kind=kind, confidence=confidence, n_bootstrap=n_bootstrap,
                             seed=seed)

    results: list[ConditionResult] = []
    per_item: list[pd.DataFrame] = []
    notes: list[str] = []
    for name in names:
        rows = table[table["perturbation"] == name]
        n_items = int(rows["id"].nunique())
        unreadable = int((rows["category"] == UNREADABLE).sum())
        if unreadable:
            notes.append(f"{name}: {unreadable} of {len(rows)} answers unreadable (counted as "
                         "not correct; a change to or from unreadable counts as a flip)")
        accuracy = interval(rows["correct"], rows)
        if name == CLEAN:
            results.append(ConditionResult(name, accuracy, None, None, n_items, unreadable))
            continue
        before = clean.loc[pd.MultiIndex.from_frame(rows[["id", "draw"]])]
        flipped = rows["category"].to_numpy() != before["category"].to_numpy()
        paired = pd.DataFrame({"id": rows["id"].to_numpy(), "perturbation": name,
                               "draw": rows["draw"].to_numpy(),
                               "correct": rows["correct"].to_numpy(bool),
                               "clean_correct": before["correct"].to_numpy(bool),
                               "flipped": flipped})
        if cluster:
            paired[cluster] = rows[cluster].to_numpy()
        per_item.append(paired)
        drop = before["correct"].to_numpy(float) - rows["correct"].to_numpy(float)
        results.append(ConditionResult(name, accuracy, interval(flipped, rows),
                                       interval(before["correct"], rows), n_items,
                                       unreadable, interval(drop, rows, "paired")))
    frame = pd.concat(per_item, ignore_index=True) if per_item else pd.DataFrame(
        columns=["id", "perturbation", "draw", "correct", "clean_correct", "flipped"])
    per_draw = _per_draw(table, frame)
    notes += _notes(table, results, cluster, n_draws)
    return InterferenceReport(results, frame, cluster, notes, per_draw, n_draws)


def _per_draw(table: pd.DataFrame, flips: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and flip rate of every condition in every draw (point estimates)."""
    accuracy = table.groupby(["perturbation", "draw"], sort=False).agg(
        n=("id", "nunique"), accuracy=("correct", "mean")).reset_index()
    if "seed" in table.columns:
        seeds = table.groupby("draw")["seed"].first()
        accuracy.insert(2, "seed", accuracy["draw"].map(seeds))
    delta = flips.groupby(["perturbation", "draw"], sort=False)["flipped"].mean().rename(
        "delta").reset_index()
    return accuracy.merge(delta, on=["perturbation", "draw"], how="left")


def _notes(table: pd.DataFrame, results: list[ConditionResult], cluster: str | None,
           n_draws: int) -> list[str]:
    notes: list[str] = []
    if "relevant" in table.columns:
        clean = table[table["perturbation"] == CLEAN]
        parts = [f"{HEAVY.get(k, k)} {v['correct'].mean():.3f} (n={v['id'].nunique()})"
                 for k, v in clean.groupby("relevant")]
        notes.append(f"clean accuracy by task: {', '.join(parts)}")
    flat = [f"{r.perturbation} {kind}" for r in results
            for kind, i in (("accuracy", r.accuracy), ("delta", r.delta))
            if i is not None and i.identified and i.low == i.high]
    if flat:
        notes.append(f"zero-width interval ({', '.join(flat)}): every resampled "
                     f"{'cluster' if cluster else 'item'} gives the same value; the data show "
                     "no spread, not certainty")
    if n_draws > 1:
        notes.append(f"{n_draws} perturbation draws per item: each item's accuracy and flips "
                     "are averaged over its draws before resampling, so the intervals include "
                     "the draw-to-draw variance (per-draw rates: the draws table)")
    else:
        notes.append("one perturbation draw: the intervals do not include the variance "
                     "between perturbation draws (a model run takes --draws R; a table can "
                     "carry a draw column)")
    if cluster:
        notes.append(f"intervals resample clusters ({table[cluster].nunique()} in column "
                     f"{cluster!r})")
    return notes


def attention_shift(attention: pd.DataFrame, spans: Mapping[str, str],
                    clusters: Mapping[str, str] | None = None, confidence: float = 0.95,
                    n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The attention mass on the perturbed span, clean vs perturbed, per perturbation and layer.

    Both masses and their paired difference (the shift) come with intervals.

    Args:
        attention: Head-averaged mass: ``id, perturbation, layer, span, mass``.
        spans: The span each perturbation changes (``{"MD": "context", "RP": "image"}``).
        clusters: ``{id: cluster}`` for cluster intervals (None: items independent).
        confidence: Level of the intervals.
        n_bootstrap: Bootstrap replicates of each interval.
        seed: Seed of the bootstrap.

    Returns:
        One row per (perturbation, layer): ``perturbation, span, layer, n, clean,
        clean_low, clean_high, perturbed, perturbed_low, perturbed_high, shift, shift_low,
        shift_high``.
    """
    rows: list[dict[str, Any]] = []
    for name, span in spans.items():
        part = attention[attention["span"] == span]
        wide = part[part["perturbation"].isin([CLEAN, name])].pivot_table(
            index=["id", "layer"], columns="perturbation", values="mass")
        if name not in wide.columns or CLEAN not in wide.columns:
            continue
        wide = wide.dropna(subset=[CLEAN, name]).reset_index()
        for layer, group in wide.groupby("layer"):
            labels = group["id"].map(clusters).to_numpy() if clusters else None
            row: dict[str, Any] = {"perturbation": name, "span": span, "layer": int(layer),
                                   "n": len(group)}
            for key, values in (("clean", group[CLEAN]), ("perturbed", group[name]),
                                ("shift", group[name] - group[CLEAN])):
                result = mean_interval(values.to_numpy(float), labels, kind="continuous",
                                       confidence=confidence,
                                       n_bootstrap=n_bootstrap, seed=seed)
                row.update({key: result.estimate, f"{key}_low": result.low,
                            f"{key}_high": result.high})
            rows.append(row)
    return pd.DataFrame(rows)
