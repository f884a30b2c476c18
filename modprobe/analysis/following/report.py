"""One entry point from a prediction table to every section-1 statistic.

`analyze_following` is what both `python -m modprobe.following` and the study runner
call: per model it classifies the conflict items, applies the paper's correctness filter
(counting what each step removes), computes TFR/VFR, the uncertainty axis, the law with
both balance points, its goodness of fit and trend test, and the median-entropy split
(docs/science.md). `ModelFollowing.to_dict` is the ``summary.json`` of both commands.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from modprobe.analysis.following.entropy_split import EntropySplit, split_by_entropy
from modprobe.analysis.following.law import Estimate, Law, fit_law
from modprobe.analysis.following.rates import (
    NO_CONFLICT,
    TEXT,
    VISION,
    classify_following,
    correctness_mask,
    following_rates,
)
from modprobe.analysis.following.results import FollowingReport, ModelFollowing
from modprobe.analysis.following.uncertainty import (
    NEAR_CERTAIN,
    saturation_share,
    uncertainty_axis,
)
from modprobe.analysis.table import TableError, validate_table
from modprobe.stats import DEFAULT_RESAMPLES

#: Model name used when the table has no ``model`` column.
DEFAULT_MODEL = "model"
#: ``cluster=AUTO``: use a column named ``cluster`` when the table has one.
AUTO = "auto"
CLUSTER_COLUMN = "cluster"


def _filter_steps(labels: np.ndarray, both_correct: np.ndarray | None,
                  correct_text: np.ndarray | None, correct_vision: np.ndarray | None,
                  degenerate: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Each step from the group's rows to the law's items, and the law's mask."""
    steps: list[dict[str, Any]] = []
    keep = np.ones(labels.size, dtype=bool)

    def _drop_step(name: str, what: str, drop: np.ndarray, why: str = "") -> None:
        nonlocal keep
        removed = int(np.sum(keep & drop))
        keep = keep & ~drop
        steps.append({"step": name, "what": what, "removed": removed,
                      "left": int(keep.sum()), "why": why})

    steps.append({"step": "rows", "what": "items", "removed": 0, "left": labels.size,
                  "why": ""})
    _drop_step("no_conflict", "not conflicts", labels == NO_CONFLICT, "Y_t == Y_v")
    if both_correct is not None and correct_text is not None and correct_vision is not None:
        wrong_t = int(np.sum(keep & ~correct_text & correct_vision))
        wrong_v = int(np.sum(keep & correct_text & ~correct_vision))
        wrong_both = int(np.sum(keep & ~correct_text & ~correct_vision))
        _drop_step("incorrect", "with a wrong unimodal answer", ~both_correct,
                   f"text-only {wrong_t}, vision-only {wrong_v}, both {wrong_both}")
    _drop_step("other", "follow neither modality", ~np.isin(labels, [TEXT, VISION]))
    _drop_step("degenerate", "with undefined dH_rel", degenerate, "H_t + H_v ~ 0")
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
    """Every section-1 statistic of one model's rows (see `analyze_following`)."""
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
    both = ct = cv = None
    if filter_correct:
        both = correctness_mask(len(items), correct_text, correct_vision)
        ct = np.asarray(correct_text, dtype=bool)
        cv = np.asarray(correct_vision, dtype=bool)
    steps, in_law = _filter_steps(labels, both, ct, cv, ax.degenerate)
    frame = items.copy()
    frame["label"] = labels
    frame["x"] = ax.values
    frame["degenerate"] = ax.degenerate
    frame["in_law"] = in_law
    notes: list[str] = []
    clusters = None if labels_of_clusters is None else labels_of_clusters[in_law]
    if clusters is not None and pd.unique(clusters).size < 2:
        notes.append(
            f"the law's items span {pd.unique(clusters).size} cluster(s) of {cluster!r}; the "
            "bootstrap resamples single items instead (intervals too narrow if they correlate)"
        )
        clusters = None
    law, split_result = _fit_law_and_split(items, ax.values, labels == TEXT, in_law, clusters,
                                           "dH_rel" if axis == "rel" else "H_t - H_v", split,
                                           law_kwargs, notes)
    return ModelFollowing(
        model=name,
        rates=rates,
        axis=ax,
        items=frame,
        law=law,
        split=split_result,
        saturation=_saturation(items, labels, ax.values, axis),
        note="; ".join(notes) or None,
        cluster=cluster,
        filter_steps=steps,
        filter_correct=filter_correct,
        cluster_found=cluster_found,
    )


def _saturation(items: pd.DataFrame, labels: np.ndarray, x: np.ndarray,
                axis: Literal["rel", "abs"]) -> float:
    """Share of conflict items at the ends of the axis, NaN without conflicts.

    With ``abs``, the share of conflict items whose two answers are both near-certain.
    """
    conflict = labels != NO_CONFLICT
    if axis != "abs":
        return saturation_share(x[conflict])
    near = (items["h_text"].to_numpy() < NEAR_CERTAIN) & (
        items["h_vision"].to_numpy() < NEAR_CERTAIN)
    return float(near[conflict].mean()) if conflict.any() else float("nan")


def _fit_law_and_split(
    items: pd.DataFrame, x: np.ndarray, followed: np.ndarray, in_law: np.ndarray,
    clusters: np.ndarray | None, x_label: str, split: bool, law_kwargs: dict[str, Any],
    notes: list[str],
) -> tuple[Law | None, EntropySplit | None]:
    """The law on the ``in_law`` items and, if ``split``, its median-entropy halves.

    A fit that the data do not allow is None, and ``notes`` gets a line saying why.
    """
    try:
        law = fit_law(x[in_law], followed[in_law], x_label=x_label, clusters=clusters,
                      **law_kwargs)
    except ValueError as err:
        notes.append(f"law not fitted: {err}")
        return None, None
    if not split:
        return law, None
    try:
        return law, split_by_entropy(
            items["h_text"].to_numpy()[in_law],
            items["h_vision"].to_numpy()[in_law],
            x[in_law],
            followed[in_law],
            clusters=clusters,
            x_label=x_label,
            **law_kwargs,
        )
    except ValueError as err:
        notes.append(f"entropy split not fitted: {err}")
        return law, None


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
    items = _conflict_rows(validate_table(table), conflict_group)
    if filter_correct is None:
        filter_correct = {"correct_text", "correct_vision"} <= set(items.columns)
    cluster, found = _resolve_cluster(items, cluster)
    if "model" not in items.columns:
        items = items.assign(model=DEFAULT_MODEL)
    law_kwargs = {"n_bootstrap": n_bootstrap, "confidence": confidence, "bins": bins,
                  "bin_strategy": bin_strategy, "seed": seed, "isotonic_band": isotonic_band,
                  "balance_estimate": balance_estimate}
    models = {
        str(name): _analyze_model(str(name), part.reset_index(drop=True), axis, entropy_floor,
                                  filter_correct, split, law_kwargs, cluster, found)
        for name, part in items.groupby("model", sort=False)
    }
    return FollowingReport(
        models=models,
        axis=axis,
        entropy_floor=entropy_floor,
        filter_correct=filter_correct,
        conflict_group=conflict_group,
    )


def _conflict_rows(items: pd.DataFrame, conflict_group: str | None) -> pd.DataFrame:
    """The rows of ``conflict_group`` when the table has a ``group`` column, else all rows.

    Raises:
        TableError: When no row belongs to ``conflict_group``.
    """
    if conflict_group is None or "group" not in items.columns:
        return items
    items = items[items["group"] == conflict_group]
    if items.empty:
        raise TableError(
            f"no rows with group == {conflict_group!r} (set conflict_group=None or "
            "--group to analyse another group)",
            "group",
        )
    return items
