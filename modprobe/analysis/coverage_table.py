"""The coverage tables of docs/science.md, regenerated from planted truths.

Two tables, every number measured by this module (no claim in the docs is wider):

* balance points: for each planted law (well-specified logistic, a step, a plateau
  ramp, and clustered versions of each) and two sample sizes, the share of datasets
  whose logistic and monotone intervals cover the planted balance point, and the
  median estimate (a consistent estimator's median approaches the truth as n grows);
* few clusters: the coverage of `modprobe.stats.mean_interval` (the interval of every
  rate the toolkit prints) on beta-binomial clusters, 8 and 12 of them.

Run it as (about 25 minutes on a shared two-core machine)

    OMP_NUM_THREADS=1 nice modprobe coverage-table

and paste its output into docs/science.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy.special import expit, logit

from modprobe.analysis.law import balance_point, fit_law
from modprobe.stats import DEFAULT_RESAMPLES, mean_interval

#: Planted laws: name -> (P(text | x) on a vectorised x, true balance point).
LAWS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "logistic": (lambda x: expit(-4.0 * (x + 0.3)), -0.3),
    "step": (lambda x: np.where(x < 0.5, 0.9, 0.35), 0.5),
    "plateau": (lambda x: np.clip(0.9 - 0.75 * (x + 0.5), 0.15, 0.9), -0.5 + 0.4 / 0.75),
}
#: Clustered versions: this many clusters, logit shifts with this standard deviation
#: (symmetric shifts keep the marginal curve's crossing at the planted point).
CLUSTERS, CLUSTER_SD = 8, 0.5


def _draw(law: str, n: int, clustered: bool,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    curve, _ = LAWS[law]
    x = rng.uniform(-2.0, 2.0, n)
    p = curve(x)
    labels = None
    if clustered:
        labels = rng.integers(0, CLUSTERS, n)
        shift = rng.normal(0.0, CLUSTER_SD, CLUSTERS)[labels]
        p = expit(logit(np.clip(p, 1e-9, 1 - 1e-9)) + shift)
    return x, rng.random(n) < p, labels


def balance_rows(n_datasets: int, sizes: Sequence[int], n_bootstrap: int,
                 seed: int) -> Iterator[str]:
    """One table row per (law, clustered, n): coverage of both intervals."""
    yield ("| law | clusters | n | logistic coverage | monotone coverage | "
           "median monotone estimate (truth) |")
    yield "|---|---|---|---|---|---|"
    rng = np.random.default_rng(seed)
    for law, (_, truth) in LAWS.items():
        for clustered in (False, True):
            for n in sizes:
                cover = np.zeros(2)
                mono = []
                for d in range(n_datasets):
                    x, y, labels = _draw(law, n, clustered, rng)
                    fit = fit_law(x, y, n_bootstrap=n_bootstrap, clusters=labels,
                                  isotonic_band=False, seed=d, bins=5)
                    for k, bp in enumerate((fit.balance_point, fit.balance_point_monotone)):
                        cover[k] += bp.crosses and bp.ci_low <= truth <= bp.ci_high
                    mono.append(fit.balance_point_monotone.value)
                unit = str(CLUSTERS) if clustered else "items"
                yield (f"| {law} | {unit} | {n} | {cover[0] / n_datasets:.2f} | "
                       f"{cover[1] / n_datasets:.2f} | {np.nanmedian(mono):.3f} ({truth:.3f}) |")


def replicate_rows(n_datasets: int, seed: int) -> list[str]:
    """The logistic balance point with 8 clusters (n = 500) by bootstrap replicates:
    the expanded percentiles lie in the tails, where 400 replicates leave a bound on
    two or three of them."""
    rows = ["| replicates | logistic coverage |", "|---|---|"]
    rng = np.random.default_rng(seed)
    covered = np.zeros(2)
    for d in range(n_datasets):
        x, y, labels = _draw("logistic", 500, True, rng)
        for k, n_boot in enumerate((400, DEFAULT_RESAMPLES)):
            bp = balance_point(x, y, n_bootstrap=n_boot, seed=d, clusters=labels)
            covered[k] += bp.crosses and bp.ci_low <= LAWS["logistic"][1] <= bp.ci_high
    rows += [f"| {n_boot} | {c / n_datasets:.3f} |"
             for n_boot, c in zip((400, DEFAULT_RESAMPLES), covered)]
    return rows


def cluster_rows(n_datasets: int, seed: int,
                 n_bootstrap: int = DEFAULT_RESAMPLES) -> list[str]:
    """Coverage of `mean_interval` on clusters of 10-39 items: 0/1 values from
    beta-binomial clusters (``n_datasets`` per row), paired differences and counts
    (a quarter as many: each takes a bootstrap of the toolkit's default replicates,
    because the expanded percentiles lie in the tails, where fewer replicates would
    bias the bounds inward)."""
    rows = ["| clusters | quantity | intra-cluster correlation | coverage |",
            "|---|---|---|---|"]
    rng = np.random.default_rng(seed)
    for n_clusters in (8, 12):
        for p, rho in ((0.5, 0.2), (0.3, 0.1), (0.15, 0.05), (0.1, 0.1)):
            a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
            covered = 0
            for d in range(n_datasets):
                sizes = rng.integers(10, 40, n_clusters)
                means = rng.beta(a, b, n_clusters)
                values = np.concatenate([rng.random(s) < q for s, q in zip(sizes, means)])
                iv = mean_interval(values, np.repeat(np.arange(n_clusters), sizes),
                                   n_resamples=n_bootstrap, seed=d)
                covered += iv.low <= p <= iv.high
            rows.append(f"| {n_clusters} | rate {p} | {rho} | {covered / n_datasets:.3f} |")
        for kind in ("paired difference", "count"):  # a bootstrap each: fewer datasets
            rows.append(f"| {n_clusters} | {kind} | 0.1 | "
                        f"{_other_coverage(kind, n_clusters, n_datasets // 4, rng):.3f} |")
    return rows


def _other_coverage(kind: str, n_clusters: int, n_datasets: int,
                    rng: np.random.Generator) -> float:
    """Coverage of `mean_interval` (expanded percentile cluster bootstrap) for values
    that are not 0/1: paired differences in {-1, 0, +1} (P(+1) ~ Beta(mean 0.2),
    P(-1) ~ Beta(mean 0.1) per cluster, intra-cluster correlation 0.1; truth 0.1) and
    counts (Poisson with a Gamma(2, 0.75) rate per cluster; truth 1.5)."""
    covered = 0
    for d in range(n_datasets):
        sizes = rng.integers(10, 40, n_clusters)
        codes = np.repeat(np.arange(n_clusters), sizes)
        if kind == "count":
            truth = 1.5
            values = rng.poisson(rng.gamma(2.0, 0.75, n_clusters)[codes]).astype(float)
        else:
            truth = 0.1
            up = rng.beta(0.2 * 9, 0.8 * 9, n_clusters)[codes]
            down = rng.beta(0.1 * 9, 0.9 * 9, n_clusters)[codes]
            u = rng.random(codes.size)
            values = (u < up).astype(float) - ((u >= up) & (u < up + down)).astype(float)
        iv = mean_interval(values, codes, seed=d)
        covered += iv.low <= truth <= iv.high
    return covered / n_datasets


if __name__ == "__main__":  # ``python -m modprobe.analysis.coverage_table`` = ``modprobe coverage-table``
    from modprobe.commands.coverage_table import main

    sys.exit(main())
