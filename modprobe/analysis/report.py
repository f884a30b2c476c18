"""One entry point from a prediction table to every section-1 statistic.

`analyze_following` is what both `python -m modprobe.following` and the study runner
call: per model it classifies the conflict items, applies the paper's correctness filter
(counting what each step removes), computes TFR/VFR, the uncertainty axis, the law with
both balance points, its goodness of fit and trend test, and the median-entropy split
(docs/science.md). `ModelFollowing.to_dict` is the ``summary.json`` of both commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from modprobe.analysis.law import EntropySplit, Estimate, Law, fit_law, split_by_entropy
from modprobe.analysis.table import TableError, validate_table
from modprobe.analysis.uncertainty import (
    NEAR_CERTAIN,
    UncertaintyAxis,
    saturation_share,
    uncertainty_axis,
)
from modprobe.io import json_ready
from modprobe.stats import DEFAULT_RESAMPLES

#: Model name used when the table has no ``model`` column.
DEFAULT_MODEL = "model"
#: Share of items with ``|dH_rel| > 1.5`` above which the report warns of saturation.
SATURATION_WARNING = 0.5
#: ``cluster=AUTO``: use a column named ``cluster`` when the table has one.
AUTO = "auto"
CLUSTER_COLUMN = "cluster"


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
        saturation: On the relative axis, the share of conflict items with
            ``|dH_rel| > 1.5`` after the entropy floor in use; on the absolute axis, the
            share whose entropies are both below `NEAR_CERTAIN` nats.
        note: Why ``law`` or ``split`` is missing, if they are.
        cluster: Column whose labels the bootstrap resampled (None: single items).
        filter_steps: What each step from the group's rows to the law removed:
            ``{"step", "removed", "left", "why"}`` dicts, in order.
        filter_correct: Whether the paper's correctness filter ran.
        cluster_found: True when ``cluster`` was found in the table, not given.
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
    filter_steps: list[dict[str, Any]] = field(default_factory=list)
    filter_correct: bool = False
    cluster_found: bool = False

    def filter_line(self) -> str:
        """``filter (...): 576 items; 16 not conflicts (...); ...; 494 in the law``."""
        parts = [f"{st['removed']} {st['what']} ({st['why']})" if st.get("why") else
                 f"{st['removed']} {st['what']}" for st in self.filter_steps[1:]]
        start = self.filter_steps[0]["left"] if self.filter_steps else len(self.items)
        left = self.filter_steps[-1]["left"] if self.filter_steps else len(self.items)
        mode = ("the paper's filter, both unimodal answers correct" if self.filter_correct
                else "every conflict kept, no correctness filter")
        return f"filter ({mode}): {start} items; " + "; ".join(parts) + f"; {left} in the law"

    def summary_lines(self) -> list[str]:
        """Report lines; the last one is ``balance_point=<x> ci=[<lo>, <hi>]``.

        When no law is established, or the reported curve does not cross, the last line
        is ``balance_point=none (<reason>)``.
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
            self.filter_line(),
        ]
        n_clusters = (self.law.n_clusters if self.law is not None else None) or r.n_clusters
        if n_clusters is not None:
            few = n_clusters < FEW_CLUSTERS
            how = "found in the table" if self.cluster_found else "given"
            lines.append(
                f"bootstrap over {n_clusters} clusters of items (column "
                f"{self.cluster!r}, {how}), not over single items; tests are cluster-robust"
                + ("; with so few clusters the intervals are rough" if few else "")
            )
        lines += [
            (
                f"TFR={r.tfr:.3f} ci=[{r.tfr_ci[0]:.3f}, {r.tfr_ci[1]:.3f}] "
                f"VFR={r.vfr:.3f} ci=[{r.vfr_ci[0]:.3f}, {r.vfr_ci[1]:.3f}] (n={r.n_decided})"
            ),
            f"axis={self.axis.axis} ({axis_name}, entropy floor {self.axis.entropy_floor:g} nats)",
        ]
        warning = self.saturation_warning()
        if warning:
            lines.append(warning)
        if self.law is not None:
            lines.append(self.law.monotonicity.summary())
            lines += self.law.summary_lines()
        if self.split is not None:
            lo = self.split.low.reported_balance_point
            hi = self.split.high.reported_balance_point
            lines.append(
                f"entropy split at median H_t+H_v={self.split.median_total:.4g}: "
                f"low-entropy half {lo.summary()}; high-entropy half {hi.summary()}"
            )
        if self.note:
            lines.append(f"note: {self.note}")
        if self.law is None:
            lines.append(f"balance_point=none ({self.note})")
        else:
            lines.append(self.law.reported_balance_point.summary())
        return lines

    def saturation_warning(self) -> str | None:
        """A warning line when saturated entropies dominate the axis in use, else None."""
        if not (np.isfinite(self.saturation) and self.saturation > SATURATION_WARNING):
            return None
        floor = self.axis.entropy_floor
        if self.axis.axis == "abs":
            return (f"warning: saturation: {self.saturation:.0%} of conflict items are "
                    f"near-certain in both runs (H_t, H_v < {NEAR_CERTAIN:g} nats); on the abs "
                    "axis they pile up at 0")
        floor_text = (f"with entropy floor {floor:g} nats" if floor > 0 else "without an "
                      "entropy floor")
        advice = ("consider a larger --entropy-floor or --axis abs" if floor > 0
                  else "consider --entropy-floor 0.05 or --axis abs")
        return (f"warning: saturation: {self.saturation:.0%} of conflict items have "
                f"|dH_rel| > 1.5 {floor_text}; {advice}")

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable summary (``summary.json``): JSON-ready, no NaN."""
        r = self.rates
        out: dict[str, Any] = {
            "model": self.model, "tfr": r.tfr, "tfr_ci": list(r.tfr_ci), "vfr": r.vfr,
            "vfr_ci": list(r.vfr_ci), "n_text": r.n_text, "n_vision": r.n_vision,
            "n_other": r.n_other, "n_no_conflict": r.n_no_conflict,
            "n_filtered_incorrect": r.n_filtered, "filter_correct": self.filter_correct,
            "filter_steps": self.filter_steps, "axis": self.axis.axis,
            "entropy_floor": self.axis.entropy_floor, "saturation": self.saturation,
            "cluster": self.cluster, "note": self.note,
        }
        law = self.law
        if law is not None:
            m = law.monotonicity
            out.update({
                "balance_point": law.balance_point.to_dict(),
                "balance_point_monotone": (law.balance_point_monotone.to_dict()
                                           if law.balance_point_monotone else None),
                "goodness_of_fit": (law.goodness_of_fit.to_dict()
                                    if law.goodness_of_fit else None),
                "monotonicity": {"direction": m.direction, "p_value": m.p_value,
                                 "statistic": m.statistic, "df": m.df,
                                 "test": "cluster-robust score test of the logistic slope",
                                 "slope": m.slope, "slope_ci": list(m.slope_ci),
                                 "summary": m.summary()},
                "recommended_estimate": law.recommendation,
                "recommendation": law.recommendation_reason,
                "reported_estimate": law.estimate,
                "n_law": law.n, "n_clusters": law.n_clusters,
            })
        if self.split is not None:
            out["entropy_split"] = {
                "median_total": self.split.median_total,
                "low": self.split.low.reported_balance_point.to_dict(),
                "high": self.split.high.reported_balance_point.to_dict()}
        return json_ready(out)


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


def _filter_steps(labels: np.ndarray, both_correct: np.ndarray | None,
                  correct_text: np.ndarray | None, correct_vision: np.ndarray | None,
                  degenerate: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Each step from the group's rows to the law's items, and the law's mask."""
    steps: list[dict[str, Any]] = []
    keep = np.ones(labels.size, dtype=bool)

    def step(name: str, what: str, drop: np.ndarray, why: str = "") -> None:
        nonlocal keep
        removed = int(np.sum(keep & drop))
        keep = keep & ~drop
        steps.append({"step": name, "what": what, "removed": removed,
                      "left": int(keep.sum()), "why": why})

    steps.append({"step": "rows", "what": "items", "removed": 0, "left": labels.size,
                  "why": ""})
    step("no_conflict", "not conflicts", labels == NO_CONFLICT, "Y_t == Y_v")
    if both_correct is not None and correct_text is not None and correct_vision is not None:
        wrong_t = int(np.sum(keep & ~correct_text & correct_vision))
        wrong_v = int(np.sum(keep & correct_text & ~correct_vision))
        wrong_both = int(np.sum(keep & ~correct_text & ~correct_vision))
        step("incorrect", "with a wrong unimodal answer", ~both_correct,
             f"text-only {wrong_t}, vision-only {wrong_v}, both {wrong_both}")
    step("other", "follow neither modality", ~np.isin(labels, [TEXT, VISION]))
    step("degenerate", "with undefined dH_rel", degenerate, "H_t + H_v ~ 0")
    return steps, keep


def _analyze_model(
    name: str,
    items: pd.DataFrame,
    axis: Literal["rel", "abs"],
    entropy_floor: float,
    filter_correct: bool,
    split: bool,
    law_kwargs: dict[str, Any],
    cluster: str | None = None,
    cluster_found: bool = False,
) -> ModelFollowing:
    labels = classify_following(items["y_text"], items["y_vision"], items["y_multi"])
    correct_text = items.get("correct_text")
    correct_vision = items.get("correct_vision")
    labels_of_clusters = None if cluster is None else items[cluster].to_numpy(dtype=object)
    rates = following_rates(
        labels, correct_text, correct_vision, filter_correct, law_kwargs["confidence"],
        clusters=labels_of_clusters, n_bootstrap=law_kwargs["n_bootstrap"],
        seed=law_kwargs["seed"],
    )
    ax = uncertainty_axis(items["h_text"], items["h_vision"], axis, entropy_floor)
    both = None
    ct = cv = None
    if filter_correct:
        both = correctness_mask(len(items), correct_text, correct_vision)
        ct = np.asarray(correct_text, dtype=bool)
        cv = np.asarray(correct_vision, dtype=bool)
    steps, in_law = _filter_steps(labels, both, ct, cv, ax.degenerate)
    conflict = labels != NO_CONFLICT
    if axis == "abs":
        near = (items["h_text"].to_numpy() < NEAR_CERTAIN) & (
            items["h_vision"].to_numpy() < NEAR_CERTAIN)
        saturation = float(near[conflict].mean()) if conflict.any() else float("nan")
    else:
        saturation = saturation_share(ax.values[conflict])
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
    clusters = None if labels_of_clusters is None else labels_of_clusters[in_law]
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
        filter_steps=steps,
        filter_correct=filter_correct,
        cluster_found=cluster_found,
    )


def cluster_column(items: pd.DataFrame) -> tuple[str | None, str | None]:
    """The one rule that picks a table's cluster column (``cluster="auto"`` everywhere).

    A column named ``cluster`` is used when every row has a label: the bootstrap then
    resamples clusters (the generated datasets label one cluster per group of shape and
    colors), else single rows.

    Args:
        items: A table (one row per item, or per item x condition).

    Returns:
        ``("cluster", None)`` when every row is labelled; ``(None, None)`` without labels;
        ``(None, why)`` when only some rows are labelled (``why`` says the bootstrap
        resamples single items).
    """
    if CLUSTER_COLUMN not in items.columns or items[CLUSTER_COLUMN].isna().all():
        return None, None
    missing = int(items[CLUSTER_COLUMN].isna().sum())
    if missing:
        return None, (f"{missing} of {len(items)} items have no cluster label, so the "
                      "bootstrap resamples single items")
    return CLUSTER_COLUMN, None


def _resolve_cluster(items: pd.DataFrame, cluster: str | None) -> tuple[str | None, bool]:
    """The cluster column to use and whether it was found (``cluster="auto"``)."""
    if cluster == AUTO:
        found, _ = cluster_column(items)
        return found, found is not None
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
    return cluster, False


def analyze_following(
    table: pd.DataFrame,
    axis: Literal["rel", "abs"] = "rel",
    entropy_floor: float = 0.0,
    filter_correct: bool | None = None,
    conflict_group: str | None = "conflict",
    n_bootstrap: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    bins: int = 10,
    bin_strategy: Literal["quantile", "uniform"] = "quantile",
    seed: int = 0,
    split: bool = True,
    isotonic_band: bool = True,
    cluster: str | None = AUTO,
    balance_estimate: Estimate = "auto",
) -> FollowingReport:
    """Every section-1 statistic of a prediction table, per model.

    docs/science.md end to end: `classify_following` (conflict = Y_t != Y_v), the
    paper's correctness filter, `following_rates` (TFR, VFR), `uncertainty_axis` (dH_rel
    or H_t - H_v, optional entropy floor, degenerate items flagged and left out),
    `fit_law` on decided items (binned rates, logistic and isotonic fits, goodness of
    fit, trend test, both balance points) and `split_by_entropy`.

    Args:
        table: Prediction table (see `modprobe.analysis.table`); validated here.
        axis: ``"rel"`` (dH_rel, the paper's) or ``"abs"`` (H_t - H_v, nats).
        entropy_floor: Floor on entropies before computing the axis (nats).
        filter_correct: Keep only items whose unimodal answers are both correct (the
            paper's macro filter). None (default): apply it when the table has
            ``correct_text`` and ``correct_vision``; False: keep every conflict.
        conflict_group: With a ``group`` column, analyse only rows of this group
            (None: all rows). Ignored when the table has no ``group`` column.
        n_bootstrap: Bootstrap replicates.
        confidence: Interval level.
        bins: Number of bins for the displayed rates.
        bin_strategy: ``"quantile"`` (equal counts) or ``"uniform"`` (equal width) bins.
        seed: Bootstrap seed.
        split: Also fit the median-entropy halves.
        isotonic_band: Keep the isotonic band.
        cluster: A column of cluster labels: every interval resamples whole clusters and
            every test uses cluster-robust variances. ``"auto"`` (default): the column
            ``cluster`` when the table has one with every row labelled; None: items.
        balance_estimate: Balance point reported last and used for regions:
            ``"auto"`` (default: the recommended one), or ``"logistic"`` or
            ``"monotone"`` to force one; none when no law is established.

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
    if filter_correct is None:
        filter_correct = {"correct_text", "correct_vision"} <= set(items.columns)
    cluster, found = _resolve_cluster(items, cluster)
    if "model" not in items.columns:
        items = items.assign(model=DEFAULT_MODEL)
    law_kwargs = {
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "bins": bins,
        "bin_strategy": bin_strategy,
        "seed": seed,
        "isotonic_band": isotonic_band,
        "balance_estimate": balance_estimate,
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
            found,
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
