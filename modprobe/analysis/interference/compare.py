"""Paired comparison of two interference runs on the same items; per-item draw means.

Two runs of the same items (a model before and after fine-tuning, two prompts, two
baselines) are compared item by item, never through their marginal intervals: for each
perturbation, each item's flip indicator (and its correctness) in run B minus the same
item's in run A is a paired difference, and

    difference = mean over items of (value in B - value in A)

gets the toolkit's cluster-aware interval (`modprobe.stats.mean_interval`) and the exact
cluster sign-flip p-value (`modprobe.stats.sign_flip_p`) of "no difference". With
perturbation draws (a ``draw`` column), each item's values are first averaged over its
draws (`item_means`), in each run separately.

```python
from modprobe.analysis.interference.compare import compare_interference
result = compare_interference(items_a, items_b)     # tables as items.csv holds them
for line in result.lines():
    print(line)
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.interference.effects import CLEAN, InterferenceTableError
from modprobe.stats import DEFAULT_RESAMPLES, mean_interval, sign_flip_p

#: Measures compared, with the per-item column they difference.
MEASURES = {"flip rate": "flipped", "accuracy": "correct"}


class RunsDifferError(InterferenceTableError):
    """Two runs cannot be paired.

    Their items, perturbations, gold answers or clusters differ (the message names the
    first difference).
    """


def item_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per item and condition, correctness and flips averaged over perturbation draws.

    Args:
        table: Rows ``id, perturbation, category, correct`` (+ ``draw``, ``cluster``,
            ``gold``): one row per item, condition (and draw). Without ``draw`` every row
            is draw 0. A perturbed row's flip compares it with the clean row of the same
            item and draw, or with the item's only clean row when the clean input ran
            once.

    Returns:
        One row per (id, perturbation): ``id, perturbation, correct, flipped`` (NaN for
        clean), ``n_draws`` and ``cluster``/``gold`` when the table has them.
    """
    frame = table.assign(draw=table["draw"] if "draw" in table.columns else 0)
    if frame["correct"].dtype == object:  # "True"/"False" read as text
        frame = frame.assign(correct=frame["correct"].astype(str).str.lower().isin(
            ["true", "1", "1.0"]))
    clean_rows = frame[frame["perturbation"] == CLEAN]
    if clean_rows["id"].is_unique:
        # The clean input ran once (MMA's aligned clips are not redrawn): every draw's
        # perturbed answer is compared with that one clean answer.
        before = clean_rows.set_index("id")["category"].reindex(frame["id"]).to_numpy()
    else:
        clean = clean_rows.set_index(["id", "draw"])["category"]
        before = clean.reindex(pd.MultiIndex.from_frame(frame[["id", "draw"]])).to_numpy()
    flipped = np.where(frame["perturbation"] == CLEAN, np.nan,
                       (frame["category"].to_numpy() != before).astype(float))
    frame = frame.assign(flipped=flipped, correct=frame["correct"].astype(float))
    extra = [c for c in ("cluster", "gold", "relevant") if c in frame.columns]
    grouped = frame.groupby(["id", "perturbation"], sort=False)
    out = grouped.agg(correct=("correct", "mean"), flipped=("flipped", "mean"),
                      n_draws=("draw", "nunique"))
    for column in extra:
        out[column] = grouped[column].first()
    return out.reset_index()


@dataclass
class Comparison:
    """What :func:`compare_interference` found.

    Attributes:
        table: One row per (perturbation, measure): ``perturbation, measure, n,
            n_clusters, a, b, difference, low, high, p, method``.
        names: The two runs' names (A, B).
        notes: Caveats printed after the lines.
        confidence: Interval level.
    """

    table: pd.DataFrame
    names: tuple[str, str] = ("A", "B")
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.95

    def lines(self) -> list[str]:
        """One line per perturbation (flip rate, then accuracy), then the notes."""
        a, b = self.names
        level = f"{100 * self.confidence:g}%"
        header = (f"paired differences, {b} minus {a} (same items; {level} cluster interval, "
                  "exact sign-flip p)")
        out = [header]
        for name, part in self.table.groupby("perturbation", sort=False):
            pieces = [f"{row.measure} {_num(row.a)} -> {_num(row.b)} "
                      f"diff={_signed(row.difference)} ci=[{_signed(row.low)}, "
                      f"{_signed(row.high)}] p={_p(row.p)}"
                      for row in part.itertuples(index=False)]
            out.append(f"{name}: " + "; ".join(pieces) + f" n={int(part['n'].iloc[0])}")
        return out + [f"note: {n}" for n in self.notes]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (``--json``): names, rows, notes and lines."""
        from modprobe.io import json_ready

        return json_ready({"names": list(self.names), "rows": self.table.to_dict("records"),
                           "notes": self.notes, "lines": self.lines()})


def _num(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "nan"


def _signed(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "nan"


def _p(value: float) -> str:
    return "n/a (identical on every item)" if not math.isfinite(value) else f"{value:.3g}"


def check_same_items(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> None:
    """Refuse two runs that do not hold the same items under the same conditions.

    Args:
        a: Run A's item table (``id, perturbation`` [+ ``gold``, ``cluster``]).
        b: Run B's item table, same columns.
        names: How the runs are named in the error (A's name, B's name).

    Raises:
        RunsDifferError: naming the first difference found (conditions, then items,
            then gold answers, then cluster labels).
    """
    na, nb = names
    conditions_a, conditions_b = set(a["perturbation"]), set(b["perturbation"])
    if conditions_a != conditions_b:
        raise RunsDifferError(
            f"runs differ in their conditions: only in {na}: "
            f"{', '.join(sorted(conditions_a - conditions_b)) or 'none'}; only in {nb}: "
            f"{', '.join(sorted(conditions_b - conditions_a)) or 'none'}; compare runs made "
            "with the same --perturb")
    keys_a = set(zip(a["id"], a["perturbation"]))
    keys_b = set(zip(b["id"], b["perturbation"]))
    if keys_a != keys_b:
        only_a, only_b = sorted(keys_a - keys_b), sorted(keys_b - keys_a)
        first = (only_a or only_b)[0]
        raise RunsDifferError(
            f"runs differ in their items: {len(only_a)} (item, condition) pairs only in {na}, "
            f"{len(only_b)} only in {nb} (first: item {first[0]!r} under {first[1]}); "
            "compare runs of the same task folder and --limit")
    for column, what in (("gold", "gold answer"), ("cluster", "cluster label")):
        if column in a.columns and column in b.columns:
            left = a.drop_duplicates("id").set_index("id")[column].astype(str)
            right = b.drop_duplicates("id").set_index("id")[column].astype(str)
            right = right.reindex(left.index)
            differ = left.index[left.to_numpy() != right.to_numpy()]
            if len(differ):
                item = differ[0]
                raise RunsDifferError(
                    f"runs differ in the {what} of {len(differ)} items (first: item {item!r}: "
                    f"{left[item]!r} in {na}, {right[item]!r} in {nb}); the runs are not of "
                    "the same items")


def compare_interference(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("A", "B"),
                         cluster: str | None = "cluster", confidence: float = 0.95,
                         n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> Comparison:
    """Paired differences (B minus A) in flip rate and accuracy per perturbation.

    Args:
        a: Run A's item table (``id, perturbation, category, correct`` [+ ``draw``,
            ``cluster``, ``gold``]), as ``items.csv`` or :func:`read_predictions` has it.
        b: Run B's, over the same items and conditions.
        names: Names of the runs in the printed lines.
        cluster: Cluster column (None, or a column that is missing: items independent).
        confidence: Interval level.
        n_bootstrap: Bootstrap replicates.
        seed: Bootstrap and sign-flip seed.

    Returns:
        The :class:`Comparison` (accuracy also for ``clean``).

    Raises:
        RunsDifferError: the runs do not hold the same items (see `check_same_items`).
    """
    means_a, means_b = item_means(a), item_means(b)
    check_same_items(means_a, means_b, names)
    merged = means_a.merge(means_b, on=["id", "perturbation"], suffixes=("_a", "_b"))
    use_cluster = cluster is not None and f"{cluster}_a" in merged.columns \
        and merged[f"{cluster}_a"].notna().all()
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(merged["perturbation"]):
        part = merged[merged["perturbation"] == name]
        labels = part[f"{cluster}_a"].astype(str).to_numpy() if use_cluster else None
        for measure, column in MEASURES.items():
            if name == CLEAN and column == "flipped":
                continue
            diff = (part[f"{column}_b"] - part[f"{column}_a"]).to_numpy(float)
            row = {"perturbation": name, "measure": measure, "n": len(part),
                   "a": float(part[f"{column}_a"].mean()), "b": float(part[f"{column}_b"].mean())}
            if np.all(diff == 0):  # identical on every item: no spread to resample, no test
                row.update({"n_clusters": len(set(labels)) if labels is not None else None,
                            "difference": 0.0, "low": 0.0, "high": 0.0, "p": math.nan,
                            "method": "identical"})
            else:
                interval = mean_interval(diff, labels, kind="paired", confidence=confidence,
                                         n_bootstrap=n_bootstrap, seed=seed)
                row.update({"n_clusters": interval.n_clusters, "difference": interval.estimate,
                            "low": interval.low, "high": interval.high,
                            "p": sign_flip_p(diff, labels, seed=seed), "method": interval.method})
            rows.append(row)
    notes = []
    draws = (int(means_a["n_draws"].max()), int(means_b["n_draws"].max()))
    if max(draws) > 1:
        notes.append(f"each item's values are averaged over its perturbation draws ({names[0]}: "
                     f"{draws[0]}, {names[1]}: {draws[1]}) before pairing")
    units = (f"{merged[f'{cluster}_a'].nunique()} clusters" if use_cluster
             else "items (no cluster labels)")
    notes.append(f"intervals resample {units}; p: exact sign-flip test of a zero mean "
                 "difference, flipping whole clusters")
    return Comparison(pd.DataFrame(rows), names, notes, confidence)
