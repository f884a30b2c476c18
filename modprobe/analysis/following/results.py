"""Result objects of the following analysis: `ModelFollowing` per model, `FollowingReport`.

`modprobe.analysis.following.report.analyze_following` builds them; `ModelFollowing.to_dict`
is the ``summary.json`` of ``modprobe following`` and of the study runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.following.entropy_split import EntropySplit
from modprobe.analysis.following.law import Law
from modprobe.analysis.following.rates import FollowingRates
from modprobe.analysis.following.uncertainty import NEAR_CERTAIN, UncertaintyAxis
from modprobe.io import json_ready

#: Share of items with ``|dH_rel| > 1.5`` above which the report warns of saturation.
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
