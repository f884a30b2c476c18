"""Coverage of the balance-point interval on data with a planted law.

docs/science.md section 1, "Balance point": the bootstrap interval should cover the true
balance point at its nominal rate. This module simulates many datasets from a known
logistic law (`modprobe.analysis.following.simulate.simulate_law`), computes the interval on each
and reports how often it covers the planted value. Run it as

    modprobe calibration --datasets 400 --items 500 --bootstrap 400

(the output of that command is pasted in docs/analyses.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from modprobe.analysis.following.law import balance_point
from modprobe.analysis.following.simulate import simulate_clustered_law, simulate_law
from modprobe.stats import wilson_interval


@dataclass(frozen=True)
class CoverageResult:
    """Outcome of a coverage study.

    Attributes:
        n_datasets: Simulated datasets.
        n_items: Items per dataset.
        n_bootstrap: Bootstrap replicates per interval.
        true_balance_point: Planted ``x*``.
        slope: Planted slope.
        coverage: Share of intervals that contain ``x*``.
        coverage_ci: Wilson 95% interval of that share.
        miss_low: Share of intervals entirely above ``x*`` (true value below them).
        miss_high: Share of intervals entirely below ``x*``.
        mean_width: Mean interval width.
        bias: Mean of estimate - ``x*``.
        rmse: Root mean squared error of the estimate.
        n_not_crossing: Datasets whose fit did not cross 0.5 in range (count as misses).
        seconds: Wall time.
    """

    n_datasets: int
    n_items: int
    n_bootstrap: int
    true_balance_point: float
    slope: float
    coverage: float
    coverage_ci: tuple[float, float]
    miss_low: float
    miss_high: float
    mean_width: float
    bias: float
    rmse: float
    n_not_crossing: int
    seconds: float
    n_clusters: int | None = None
    cluster_sd: float = 0.0
    unit: str = "item"

    def summary(self) -> str:
        """A multi-line human-readable report."""
        return "\n".join(
            [
                (
                    f"planted balance point {self.true_balance_point:+.3f}, "
                    f"slope {self.slope:+.2f}; {self.n_datasets} datasets x {self.n_items} "
                    f"items, {self.n_bootstrap} bootstrap replicates each"
                    + (f"; {self.n_clusters} clusters (logit shift sd {self.cluster_sd:g}), "
                       f"bootstrap over {self.unit}s" if self.n_clusters else "")
                ),
                (
                    f"coverage of the 95% interval: {self.coverage:.3f} "
                    f"(Wilson 95% [{self.coverage_ci[0]:.3f}, {self.coverage_ci[1]:.3f}]); "
                    f"true value below interval {self.miss_low:.3f}, above {self.miss_high:.3f}"
                ),
                (
                    f"estimate bias {self.bias:+.4f}, rmse {self.rmse:.4f}, "
                    f"mean interval width {self.mean_width:.4f}, "
                    f"not crossing: {self.n_not_crossing}"
                ),
                f"wall time {self.seconds:.1f} s",
            ]
        )


def coverage_study(
    n_datasets: int = 200,
    n_items: int = 500,
    n_bootstrap: int = 400,
    true_balance_point: float = -0.3,
    slope: float = -4.0,
    confidence: float = 0.95,
    seed: int = 0,
    n_clusters: int | None = None,
    cluster_sd: float = 0.0,
    unit: str = "item",
) -> CoverageResult:
    """Simulate datasets from a planted law and measure interval coverage.

    For each dataset ``d``: ``(x, y) ~ simulate_law(n_items, x*, slope)``, then
    `balance_point` with ``n_bootstrap`` replicates; coverage is
    ``mean_d 1[ci_low_d <= x* <= ci_high_d]`` (docs/science.md section 1, "Balance point").
    With ``n_clusters``, datasets come from `simulate_clustered_law` (``n_items`` split
    evenly over the clusters) and ``unit`` says what the bootstrap resamples.

    Args:
        n_datasets: Number of simulated datasets.
        n_items: Items per dataset.
        n_bootstrap: Bootstrap replicates per interval.
        true_balance_point: Planted ``x*``.
        slope: Planted slope ``b``.
        confidence: Nominal interval level.
        seed: Master seed.
        n_clusters: Clusters per dataset (None: independent items).
        cluster_sd: Standard deviation of the clusters' logit shifts.
        unit: ``"item"`` or ``"cluster"`` (the latter needs ``n_clusters``).

    Returns:
        `CoverageResult`.
    """
    if unit not in ("item", "cluster"):
        raise ValueError(f"unit must be 'item' or 'cluster', not {unit!r}")
    if unit == "cluster" and not n_clusters:
        raise ValueError("unit='cluster' needs n_clusters")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    estimates = np.full(n_datasets, np.nan)
    lows = np.full(n_datasets, np.nan)
    highs = np.full(n_datasets, np.nan)
    for d in range(n_datasets):
        labels = None
        if n_clusters:
            x, y, labels = simulate_clustered_law(n_clusters, n_items // n_clusters,
                                                  true_balance_point, slope, cluster_sd, rng)
        else:
            x, y = simulate_law(n_items, true_balance_point, slope, rng)
        bp = balance_point(
            x, y, n_bootstrap=n_bootstrap, confidence=confidence, seed=int(rng.integers(2**31)),
            clusters=labels if unit == "cluster" else None,
        )
        estimates[d], lows[d], highs[d] = bp.value, bp.ci_low, bp.ci_high
    crossing = np.isfinite(estimates)
    covered = crossing & (lows <= true_balance_point) & (highs >= true_balance_point)
    n_covered = int(covered.sum())
    err = estimates[crossing] - true_balance_point
    return CoverageResult(
        n_datasets=n_datasets,
        n_items=int(x.size),
        n_bootstrap=n_bootstrap,
        true_balance_point=true_balance_point,
        slope=slope,
        coverage=n_covered / n_datasets,
        coverage_ci=wilson_interval(n_covered, n_datasets),
        miss_low=float(np.mean(crossing & (lows > true_balance_point))),
        miss_high=float(np.mean(crossing & (highs < true_balance_point))),
        mean_width=float(np.mean(highs[crossing] - lows[crossing])),
        bias=float(np.mean(err)),
        rmse=float(np.sqrt(np.mean(err**2))),
        n_not_crossing=int((~crossing).sum()),
        seconds=time.perf_counter() - start,
        n_clusters=n_clusters,
        cluster_sd=cluster_sd,
        unit=unit,
    )


if __name__ == "__main__":  # the command line is `modprobe calibration`; the library never imports it
    raise SystemExit("run `modprobe calibration` (this module is its library part)")
