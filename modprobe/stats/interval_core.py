"""The `Interval` result and the quantile helpers every interval method shares.

Kept apart from `modprobe.stats.intervals` so that the interval methods in their own
modules (`modprobe.stats.cluster_mean`) build on it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def _json_number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval.

    Attributes:
        estimate: The point estimate (NaN when not identified).
        low: Lower bound (NaN when not identified).
        high: Upper bound (NaN when not identified).
        confidence: Nominal coverage, e.g. 0.95.
        method: ``"wilson"``, ``"korn-graubard"``, ``"paired-mover"``,
            ``"cluster-bootstrap-t"``, ``"cluster-bootstrap"``, ``"bootstrap"`` or
            ``"none"``.
        n: Items the estimate is over.
        n_clusters: Clusters resampled (None when items were treated as independent).
        note: Why the interval is not identified, or a caveat ("" when none).
        mc_error: Monte Carlo standard error of the bounds (the larger of the two), NaN
            for intervals without resampling (Wilson).
        flags: Warnings a reader must see beside the interval (open bound, bound
            outside the observed range).
    """

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    method: str = "none"
    n: int = 0
    n_clusters: int | None = None
    note: str = ""
    mc_error: float = float("nan")
    flags: tuple[str, ...] = ()

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
        for key in ("estimate", "low", "high", "mc_error"):
            out[key] = _json_number(out[key])
        out["flags"] = list(self.flags)
        out["identified"] = self.identified
        return out

    def format(self, digits: int = 3) -> str:
        """``0.312 ci=[0.215, 0.439]``, or ``not identified (why)``.

        Flags follow in brackets (``[open above: ...]``).
        """
        if any(math.isnan(v) for v in (self.estimate, self.low, self.high)):
            return f"not identified ({self.note or 'no data'})"
        text = f"{self.estimate:.{digits}f} ci=[{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return text + (f" [{'; '.join(self.flags)}]" if self.flags else "")




def not_identified(note: str, *, n: int = 0, n_clusters: int | None = None,
                   confidence: float = 0.95, estimate: float = float("nan")) -> Interval:
    """An `Interval` that says why the data cannot give one.

    Args:
        note: Why there is no interval (shown by ``Interval.text``), e.g. "fewer than
            two clusters".
        n: Items behind the estimate.
        n_clusters: Clusters behind it; None for independent items.
        confidence: The level the interval would have had.
        estimate: The point estimate when it exists without an interval; NaN otherwise.

    Returns:
        An interval with NaN bounds and method ``"none"``.
    """
    nan = float("nan")
    return Interval(estimate, nan, nan, confidence, "none", n, n_clusters, note)


_BIG = 1e300


def _quantiles(values: np.ndarray, q: Any) -> np.ndarray:
    """Sample quantiles that keep +-inf replicates in order.

    Linear interpolation between two infinities would give NaN: they are clamped and
    restored.
    """
    clamped = np.clip(values, -_BIG, _BIG)
    out = np.quantile(clamped, q)
    return np.where(out >= _BIG, np.inf, np.where(out <= -_BIG, -np.inf, out))


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap ``values``.

    NaN replicates (e.g. a mean over a replicate that drew none of the items) are left
    out; +-inf replicates (e.g. a balance point that a replicate's curve never reaches)
    are kept in order, so a bound may come out infinite (an open interval) but never NaN
    because of them.

    Args:
        values: Bootstrap replicates of one statistic (any shape; flattened).
        confidence: Coverage level in (0, 1); the bounds are the ``(1 - confidence) / 2``
            and ``(1 + confidence) / 2`` sample quantiles.

    Returns:
        ``(low, high)``; both NaN when no replicate is left.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = _quantiles(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def quantile_mc_error(values: np.ndarray, q: float) -> float:
    """Monte Carlo standard error of the ``q`` sample quantile of bootstrap replicates.

    Distribution-free, from order statistics: the rank of the true quantile among ``B``
    replicates is Binomial(B, q), so the order statistics ``sqrt(B q (1 - q))`` ranks
    either side of ``B q`` bracket it with about one standard error each way; half their
    distance is the standard error of the bound (how far it moves with another seed).

    Args:
        values: Bootstrap replicates (any shape; flattened; NaNs left out).
        q: The quantile's level in [0, 1] (e.g. 0.025 for a 95% interval's lower bound).

    Returns:
        The standard error, in the replicates' units; NaN with fewer than two
        replicates, inf when either bracketing order statistic is infinite.
    """
    values = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    values = values[~np.isnan(values)]
    b = values.size
    if b < 2:
        return float("nan")
    half = math.sqrt(b * q * (1 - q))
    lo = int(np.clip(math.floor(b * q - half), 0, b - 1))
    hi = int(np.clip(math.ceil(b * q + half), 0, b - 1))
    with np.errstate(invalid="ignore"):
        err = (values[hi] - values[lo]) / 2.0
    return float(err) if math.isfinite(err) else float("inf")
