"""One entry point from a prediction table to every section-1 statistic.

`analyze_following` is what both `python -m modprobe.following` and the study runner
call: per model it classifies the conflict items, computes TFR/VFR, the uncertainty
axis, the law with its balance point and monotonicity test, and the median-entropy
split (SCIENCE.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from modprobe.analysis.following import (
    NO_CONFLICT,
    TEXT,
    VISION,
    FollowingRates,
    classify_following,
    correctness_mask,
    following_rates,
)
from modprobe.analysis.law import EntropySplit, Law, fit_law, split_by_entropy
from modprobe.analysis.table import TableError, validate_table
from modprobe.analysis.uncertainty import (
    UncertaintyAxis,
    relative_uncertainty,
    saturation_share,
    uncertainty_axis,
)

#: Model name used when the table has no ``model`` column.
DEFAULT_MODEL = "model"
#: Share of items with |dH_rel| > 1.5 above which the report warns of saturation.
SATURATION_WARNING = 0.5
#: Below this many clusters the report says that cluster-bootstrap intervals are rough.
FEW_CLUSTERS = 10


@dataclass(frozen=True)
class ModelFollowing:
    """Section-1 statistics of one model.

    Attributes:
        model: Model name.
        rates: `FollowingRates` (TFR, VFR with Wilson intervals).
        axis: `UncertaintyAxis` over the model's items (same row order as ``items``).
        items: Per item: the table's columns plus ``label`` (text/vision/other/
            no_conflict), ``x`` (axis value), ``degenerate`` and ``in_law`` (used to
            fit the law: decided, finite x, passing the correctness filter).
        law: The fitted `Law`, or None with a ``note``.
        split: `EntropySplit`, or None (too few items, or split off).
        saturation: Share of conflict items with ``|dH_rel| > 1.5`` (unfloored).
        note: Why ``law`` or ``split`` is missing, if they are.
        cluster: Column whose labels the bootstrap resampled (None: single items).
    """

    model: str
    rates: FollowingRates
    axis: UncertaintyAxis
    items: pd.DataFrame
    law: Law | None
    split: EntropySplit | None
    saturation: float
    note: str | None
    cluster: str | None = None

    def summary_lines(self) -> list[str]:
        """Report lines; the last one is ``balance_point=<x> ci=[<lo>, <hi>]``.

        When there is no crossing the last line is ``balance_point=none (<reason>)``.
        """
        r = self.rates
        axis_name = "dH_rel" if self.axis.axis == "rel" else "H_t - H_v (nats)"
        lines = [
            f"model={self.model}",
            (
                f"items={len(self.items)} conflicts={len(self.items) - r.n_no_conflict} "
                f"text={r.n_text} vision={r.n_vision} other={r.n_other} "
                f"no_conflict={r.n_no_conflict} filtered_incorrect={r.n_filtered} "
                f"degenerate={int(self.items['degenerate'].sum())}"
            ),
        ]
        n_clusters = (self.law.n_clusters if self.law is not None else None) or r.n_clusters
        if n_clusters is not None:
            few = n_clusters < FEW_CLUSTERS
            lines.append(
                f"bootstrap over {n_clusters} clusters of items (column "
                f"{self.cluster!r}), not over single items"
                + ("; with so few clusters the intervals are rough" if few else "")
            )
        lines += [
            (
                f"TFR={r.tfr:.3f} ci=[{r.tfr_ci[0]:.3f}, {r.tfr_ci[1]:.3f}] "
                f"VFR={r.vfr:.3f} ci=[{r.vfr_ci[0]:.3f}, {r.vfr_ci[1]:.3f}] (n={r.n_decided})"
            ),
            f"axis={self.axis.axis} ({axis_name}, entropy floor {self.axis.entropy_floor:g})",
        ]
        if np.isfinite(self.saturation) and self.saturation > SATURATION_WARNING:
            lines.append(
                f"warning: saturation: {self.saturation:.0%} of conflict items have "
                "|dH_rel| > 1.5; consider --entropy-floor or --axis abs"
            )
        if self.law is not None:
            lines.append(self.law.monotonicity.summary())
        if self.split is not None:
            lo, hi = self.split.low.balance_point, self.split.high.balance_point
            lines.append(
                f"entropy split at median H_t+H_v={self.split.median_total:.4g}: "
                f"low-entropy half {lo.summary()}; high-entropy half {hi.summary()}"
            )
        if self.note:
            lines.append(f"note: {self.note}")
        if self.law is None:
            lines.append(f"balance_point=none ({self.note})")
        else:
            lines.append(self.law.balance_point.summary())
        return lines


@dataclass(frozen=True)
class FollowingReport:
    """`analyze_following` output: one `ModelFollowing` per model.

    Attributes:
        models: Model name -> statistics, in table order.
        axis: ``"rel"`` or ``"abs"``.
        entropy_floor: Floor applied to entropies.
        filter_correct: Whether the paper's correctness filter was applied.
        conflict_group: Group analysed (None: all rows).
    """

    models: dict[str, ModelFollowing]
    axis: str
    entropy_floor: float
    filter_correct: bool
    conflict_group: str | None

    @property
    def laws(self) -> dict[str, Law]:
        """Model name -> `Law`, for models with a fitted law."""
        return {name: m.law for name, m in self.models.items() if m.law is not None}

    def summary_lines(self) -> list[str]:
        """All models' `ModelFollowing.summary_lines`, separated by blank lines."""
        lines: list[str] = []
        for i, m in enumerate(self.models.values()):
            if i:
                lines.append("")
            lines.extend(m.summary_lines())
        return lines


def _analyze_model(
    name: str,
    items: pd.DataFrame,
    axis: Literal["rel", "abs"],
    entropy_floor: float,
    filter_correct: bool,
    split: bool,
    law_kwargs: dict[str, Any],
    cluster: str | None = None,
) -> ModelFollowing:
    labels = classify_following(items["y_text"], items["y_vision"], items["y_multi"])
    correct_text = items.get("correct_text")
    correct_vision = items.get("correct_vision")
    rates = following_rates(
        labels, correct_text, correct_vision, filter_correct, law_kwargs["confidence"],
        clusters=None if cluster is None else items[cluster].to_numpy(dtype=object),
        n_bootstrap=law_kwargs["n_bootstrap"], seed=law_kwargs["seed"],
    )
    ax = uncertainty_axis(items["h_text"], items["h_vision"], axis, entropy_floor)
    decided = np.isin(labels, [TEXT, VISION])
    in_law = decided & ~ax.degenerate
    if filter_correct:
        in_law &= correctness_mask(len(items), correct_text, correct_vision)
    raw_rel = relative_uncertainty(items["h_text"], items["h_vision"]).values
    saturation = saturation_share(raw_rel[labels != NO_CONFLICT])
    frame = items.copy()
    frame["label"] = labels
    frame["x"] = ax.values
    frame["degenerate"] = ax.degenerate
    frame["in_law"] = in_law
    law = None
    split_result = None
    notes = []
    x_label = "dH_rel" if axis == "rel" else "H_t - H_v"
    followed = labels == TEXT
    clusters = None if cluster is None else items[cluster].to_numpy(dtype=object)[in_law]
    if clusters is not None and pd.unique(clusters).size < 2:
        notes.append(
            f"the law's items span {pd.unique(clusters).size} cluster(s) of {cluster!r}; the "
            "bootstrap resamples single items instead (intervals too narrow if they correlate)"
        )
        clusters = None
    try:
        law = fit_law(ax.values[in_law], followed[in_law], x_label=x_label, clusters=clusters,
                      **law_kwargs)
    except ValueError as err:
        notes.append(f"law not fitted: {err}")
    if law is not None and split:
        try:
            split_result = split_by_entropy(
                items["h_text"].to_numpy()[in_law],
                items["h_vision"].to_numpy()[in_law],
                ax.values[in_law],
                followed[in_law],
                clusters=clusters,
                x_label=x_label,
                **law_kwargs,
            )
        except ValueError as err:
            notes.append(f"entropy split not fitted: {err}")
    return ModelFollowing(
        model=name,
        rates=rates,
        axis=ax,
        items=frame,
        law=law,
        split=split_result,
        saturation=saturation,
        note="; ".join(notes) or None,
        cluster=cluster,
    )


def analyze_following(
    table: pd.DataFrame,
    axis: Literal["rel", "abs"] = "rel",
    entropy_floor: float = 0.0,
    filter_correct: bool = False,
    conflict_group: str | None = "conflict",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    bins: int = 10,
    bin_strategy: Literal["quantile", "uniform"] = "quantile",
    seed: int = 0,
    split: bool = True,
    isotonic_band: bool = True,
    cluster: str | None = None,
) -> FollowingReport:
    """Every section-1 statistic of a prediction table, per model.

    SCIENCE.md section 1 end to end: `classify_following` (conflict = Y_t != Y_v),
    `following_rates` (TFR, VFR, Wilson intervals; optional correctness filter),
    `uncertainty_axis` (dH_rel or H_t - H_v, optional entropy floor, degenerate items
    flagged and left out), `fit_law` on decided items (binned rates, isotonic and
    logistic fits, bootstrap bands, monotonicity test, balance point) and
    `split_by_entropy` (law per median-entropy half).

    Args:
        table: Prediction table (see `modprobe.analysis.table`); validated here.
        axis: ``"rel"`` (dH_rel, the paper's) or ``"abs"`` (H_t - H_v).
        entropy_floor: Floor on entropies before computing the axis (nats).
        filter_correct: Keep only items whose unimodal answers are both correct.
        conflict_group: With a ``group`` column, analyse only rows of this group
            (None: all rows). Ignored when the table has no ``group`` column.
        n_bootstrap: Bootstrap replicates.
        confidence: Interval level.
        bins: Number of bins for the displayed rates.
        bin_strategy: ``"quantile"`` (equal counts) or ``"uniform"`` (equal width) bins.
        seed: Bootstrap seed.
        split: Also fit the median-entropy halves.
        isotonic_band: Bootstrap the isotonic curve too.
        cluster: A column of cluster labels: the bootstrap then resamples whole clusters
            of items whose outcomes are correlated (e.g. the generated dataset's groups,
            which share shape and colors) instead of single items, whose intervals
            would be too narrow (docs/analyses.md, "Clustered items").

    Returns:
        `FollowingReport`.

    Raises:
        TableError: On an invalid table or an absent conflict group.
        ValueError: On invalid options (e.g. the filter without correctness columns).
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    items = validate_table(table)
    if conflict_group is not None and "group" in items.columns:
        items = items[items["group"] == conflict_group]
        if items.empty:
            raise TableError(
                f"no rows with group == {conflict_group!r} (set conflict_group=None or "
                "--group to analyse another group)",
                "group",
            )
    if cluster is not None:
        if cluster not in items.columns:
            raise TableError(
                f"no column {cluster!r} for the cluster bootstrap; the table has "
                f"{', '.join(map(str, items.columns))}",
                cluster,
            )
        if items[cluster].isna().any():
            raise TableError(
                f"{int(items[cluster].isna().sum())} row(s) have no {cluster!r} label; label "
                "every row (an item that shares nothing with others is a cluster of its own)",
                cluster,
            )
    if "model" not in items.columns:
        items = items.assign(model=DEFAULT_MODEL)
    law_kwargs = {
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "bins": bins,
        "bin_strategy": bin_strategy,
        "seed": seed,
        "isotonic_band": isotonic_band,
    }
    models = {
        str(name): _analyze_model(
            str(name),
            part.reset_index(drop=True),
            axis,
            entropy_floor,
            filter_correct,
            split,
            law_kwargs,
            cluster,
        )
        for name, part in items.groupby("model", sort=False)
    }
    return FollowingReport(
        models=models,
        axis=axis,
        entropy_floor=entropy_floor,
        filter_correct=filter_correct,
        conflict_group=conflict_group,
    )
