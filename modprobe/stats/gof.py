"""Goodness of fit of a fitted probability curve: Hosmer-Lemeshow, cluster-aware.

docs/science.md, "Goodness of fit". Items are sorted by fitted probability and cut into
``g`` groups of (nearly) equal size; in each, observed and expected counts are compared:

    C = sum_k (O_k - E_k)^2 / (E_k (1 - E_k / n_k)),  C ~ chi2(g - 2) under a good fit.

Items of one cluster are not independent, which inflates C. The Rao-Scott first-order
correction divides C by the design effect ``d = sum_k V_k / sum_k B_k``: ``V_k`` the
cluster-robust variance of ``O_k - E_k`` (from cluster sums of the residuals
``y - p``), ``B_k`` its binomial variance. ``d`` is clipped at 1 so clusters never make
the test more eager to reject than the independent-item test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from modprobe.stats._arrays import to_numpy
from modprobe.stats.resample import cluster_codes

REJECTED = "rejected"
NOT_REJECTED = "not rejected"
NOT_TESTED = "not tested"


@dataclass(frozen=True)
class GoodnessOfFit:
    """A Hosmer-Lemeshow test.

    Attributes:
        statistic: C after the design-effect correction (the raw C when unclustered).
        df: ``g - 2``.
        p_value: ``P(chi2(df) >= statistic)`` (NaN when not tested).
        verdict: ``"rejected"`` (p < alpha), ``"not rejected"`` or ``"not tested"``.
        groups: Groups used.
        raw_statistic: C before the correction.
        design_effect: The Rao-Scott design effect (1 without clusters).
        n_clusters: Clusters (None: independent items).
        alpha: Level of the verdict.
        note: Why not tested, if so.
    """

    statistic: float
    df: int
    p_value: float
    verdict: str
    groups: int
    raw_statistic: float
    design_effect: float
    n_clusters: int | None
    alpha: float = 0.05
    note: str = ""

    @property
    def rejected(self) -> bool:
        """Whether the test rejects the fit at level ``alpha``."""
        return self.verdict == REJECTED

    def describe(self) -> str:
        """``Hosmer-Lemeshow chi2=35.4 on 8 df, p=2.1e-05: rejected``."""
        if self.verdict == NOT_TESTED:
            return f"Hosmer-Lemeshow not tested ({self.note})"
        corr = (f", design effect {self.design_effect:.2f} over {self.n_clusters} clusters"
                if self.n_clusters is not None else "")
        return (f"Hosmer-Lemeshow chi2={self.statistic:.1f} on {self.df} df, "
                f"p={self.p_value:.2g}{corr}: {self.verdict}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become None)."""
        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None
        return {"statistic": num(self.statistic), "p_value": num(self.p_value),
                "verdict": self.verdict, "df": self.df, "groups": self.groups,
                "raw_statistic": num(self.raw_statistic),
                "design_effect": num(self.design_effect), "n_clusters": self.n_clusters,
                "test": "hosmer-lemeshow", "note": self.note}


def hosmer_lemeshow(
    y: Any, p: Any, groups: int = 10, clusters: Any | None = None, alpha: float = 0.05
) -> GoodnessOfFit:
    """Hosmer-Lemeshow test of fitted probabilities ``p`` against outcomes ``y``.

    Args:
        y: ``items`` 0/1 outcomes.
        p: ``items`` fitted probabilities.
        groups: Groups ``g`` (fewer when there are few items: at least 10 per group).
        clusters: ``items`` cluster labels: apply the Rao-Scott design-effect correction.
        alpha: Level of the verdict.

    Returns:
        `GoodnessOfFit`.
    """
    yv = to_numpy(y, dtype=np.float64).reshape(-1)
    pv = np.clip(to_numpy(p).reshape(-1), 1e-12, 1 - 1e-12)
    n = yv.size
    g = int(min(groups, n // 10))
    nan = float("nan")
    codes = None if clusters is None else cluster_codes(clusters, n)
    n_clusters = None if codes is None else int(codes.max()) + 1
    if g < 3:
        return GoodnessOfFit(nan, 0, nan, NOT_TESTED, g, nan, nan, n_clusters, alpha,
                             f"{n} items: too few for 3 groups of 10")
    order = np.argsort(pv, kind="stable")
    group = np.empty(n, dtype=np.int64)
    for k, part in enumerate(np.array_split(order, g)):
        group[part] = k
    observed = np.bincount(group, weights=yv, minlength=g)
    expected = np.bincount(group, weights=pv, minlength=g)
    size = np.bincount(group, minlength=g).astype(np.float64)
    binomial = expected * (1 - expected / size)
    raw = float(np.sum((observed - expected) ** 2 / binomial))
    deff = 1.0
    if codes is not None and n_clusters is not None and n_clusters >= 2:
        resid = np.zeros((n_clusters, g))
        np.add.at(resid, (codes, group), yv - pv)
        robust = n_clusters / (n_clusters - 1) * np.sum(resid**2, axis=0)
        deff = max(1.0, float(robust.sum() / np.bincount(group, weights=pv * (1 - pv),
                                                         minlength=g).sum()))
    statistic = raw / deff
    df = g - 2
    p_value = float(stats.chi2.sf(statistic, df))
    verdict = REJECTED if p_value < alpha else NOT_REJECTED
    return GoodnessOfFit(statistic, df, p_value, verdict, g, raw, deff, n_clusters, alpha)
