"""Intervals: the one place modprobe computes a confidence interval.

Every analysis (following rates, the law's balance points, oscillation means, interference
accuracy and flip rates, sabotage rates) reports its uncertainty through these helpers so
that one choice, documented in docs/science.md, governs them all:

- a proportion of independent items: the Wilson score interval;
- anything over items that share a cluster (one generator group, one source image): a
  cluster bootstrap (whole clusters resampled, `modprobe.stats.resample`) with a
  percentile interval;
- a quantity the data cannot identify (no items, fewer than two clusters): an `Interval`
  whose ``identified`` is False and whose ``note`` says why, never a zero-width interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from modprobe.stats.resample import cluster_codes, cluster_resample_weights

#: Bootstrap replicates used unless a caller asks for another number.
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval.

    Attributes:
        estimate: The point estimate (NaN when not identified).
        low: Lower bound (NaN when not identified).
        high: Upper bound (NaN when not identified).
        confidence: Nominal coverage, e.g. 0.95.
        method: ``"wilson"``, ``"cluster-bootstrap"``, ``"bootstrap"`` or ``"none"``.
        n: Items the estimate is over.
        n_clusters: Clusters resampled (None when items were treated as independent).
        note: Why the interval is not identified, or a caveat ("" when none).
    """

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    method: str = "none"
    n: int = 0
    n_clusters: int | None = None
    note: str = ""

    @property
    def identified(self) -> bool:
        """True when estimate and both bounds are finite numbers."""
        return all(math.isfinite(v) for v in (self.estimate, self.low, self.high))

    @property
    def ci(self) -> tuple[float, float]:
        """``(low, high)``."""
        return (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: non-finite numbers become None (JSON has no NaN)."""
        out = asdict(self)
        for key in ("estimate", "low", "high"):
            out[key] = _json_number(out[key])
        out["identified"] = self.identified
        return out

    def format(self, digits: int = 3) -> str:
        """``0.312 ci=[0.215, 0.439]``, or ``not identified (why)``."""
        if not self.identified:
            return f"not identified ({self.note or 'no data'})"
        return f"{self.estimate:.{digits}f} ci=[{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _json_number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def not_identified(note: str, *, n: int = 0, n_clusters: int | None = None,
                   confidence: float = 0.95, estimate: float = float("nan")) -> Interval:
    """An `Interval` that says why the data cannot give one."""
    nan = float("nan")
    return Interval(estimate, nan, nan, confidence, "none", n, n_clusters, note)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap ``values``; non-finite replicates (e.g. a mean
    over a replicate that drew none of the items) are left out; NaNs when none is left."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = k/n`` and
    ``z`` the two-sided normal quantile. Unlike the Wald interval it stays inside [0, 1]
    and is not degenerate at ``k = 0`` or ``k = n``.

    Args:
        successes: k.
        trials: n (``(nan, nan)`` when 0).
        confidence: Coverage level.

    Returns:
        ``(low, high)``.
    """
    low, high = wilson_intervals(np.array([successes]), np.array([trials]), confidence)
    return float(low[0]), float(high[0])


def wilson_intervals(
    successes: Any, trials: Any, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `wilson_interval` over arrays of k and n (NaN where n = 0)."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        center = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
        # Rounding can leave the estimate a hair outside at k = 0 or k = n.
        low = np.where(n > 0, np.minimum(np.maximum(0.0, center - half), p), np.nan)
        high = np.where(n > 0, np.maximum(np.minimum(1.0, center + half), p), np.nan)
    return low, high


def mean_interval(
    values: Any,
    clusters: Any | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of per-item values with its interval, cluster-aware.

    Serves every rate modprobe reports over items: accuracy (values 0/1 = correct), a
    flip rate (1 = the answer changed under a perturbation: pair the clean and perturbed
    answers per item first), a sabotage rate, an oscillation mean.

    Without ``clusters``, 0/1 values get the Wilson interval and other values a
    percentile bootstrap over items. With ``clusters`` (one label per item), whole
    clusters are resampled (a cluster bootstrap), so items that share a cluster are not
    counted as independent evidence. NaN values are left out (with their cluster labels).

    Args:
        values: ``items`` numbers (bools allowed).
        clusters: ``items`` cluster labels, or None for independent items.
        confidence: Nominal coverage.
        n_resamples: Bootstrap replicates (ignored by Wilson).
        seed: Bootstrap seed.

    Returns:
        An `Interval`; not identified (with the reason in ``note``) when no value is
        left, or when ``clusters`` leaves fewer than two clusters.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(x)
    n = int(keep.sum())
    if n == 0:
        return not_identified("no items", confidence=confidence)
    x = x[keep]
    estimate = float(x.mean())
    if clusters is not None:
        codes = cluster_codes(clusters, keep.size, keep=keep)
        n_clusters = int(codes.max()) + 1
        if n_clusters < 2:
            return not_identified(f"{n_clusters} cluster: the spread between clusters is "
                                  "unknown", n=n, n_clusters=n_clusters,
                                  confidence=confidence, estimate=estimate)
        rng = np.random.default_rng(seed)
        weights = cluster_resample_weights(codes, n_resamples, rng)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (weights @ x) / weights.sum(axis=1)
        low, high = percentile_interval(boot, confidence)
        return Interval(estimate, low, high, confidence, "cluster-bootstrap", n, n_clusters)
    if np.all((x == 0) | (x == 1)):
        low, high = wilson_interval(int(x.sum()), n, confidence)
        return Interval(estimate, low, high, confidence, "wilson", n, None)
    if n < 2:
        return not_identified("one item: no spread", n=n, confidence=confidence,
                              estimate=estimate)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    low, high = percentile_interval(x[idx].mean(axis=1), confidence)
    return Interval(estimate, low, high, confidence, "bootstrap", n, None)
