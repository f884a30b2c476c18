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

from modprobe.analysis.following.law import balance_point, fit_law
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
    """The balance-point coverage table, one Markdown row per (law, clustered, n).

    Args:
        n_datasets: Datasets drawn per row.
        sizes: Items per dataset (one row per size).
        n_bootstrap: Bootstrap replicates of each fit.
        seed: Seed of the datasets (each fit's bootstrap is seeded by its dataset index).

    Yields:
        The header, the separator, then per row the logistic and monotone intervals'
        coverage of the planted balance point and the median monotone estimate.
    """
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
    """Coverage of the logistic balance point with 8 clusters (n = 500), by replicates.

    The expanded percentiles lie in the tails, where 400 replicates leave a bound on two
    or three of them; the table compares 400 with the default number.

    Args:
        n_datasets: Datasets drawn (each analysed with both numbers of replicates).
        seed: Seed of the datasets.

    Returns:
        Markdown lines: header, separator, one row per number of replicates.
    """
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
    """Coverage and median width of `mean_interval` with 8 and 12 clusters.

    Rows: 0/1 values from beta-binomial clusters of 10-39 items, then paired
    differences and counts (`OTHER_ROWS`), these also on unequal clusters of 2-79 items.

    Args:
        n_datasets: Datasets drawn per row.
        seed: Seed of the datasets.
        n_bootstrap: Bootstrap replicates of the 0/1 rows' intervals (the other rows
            use the default).

    Returns:
        Markdown lines: header, separator, one row per quantity and number of clusters.
    """
    rows = [("| clusters | quantity | cluster sizes | intra-cluster correlation | coverage "
             "| median width |"), "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(seed)
    for n_clusters in (8, 12):
        for p, rho in ((0.5, 0.2), (0.3, 0.1), (0.15, 0.05), (0.1, 0.1)):
            a, b = p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho
            covered, widths = 0, []
            for d in range(n_datasets):
                sizes = rng.integers(10, 40, n_clusters)
                means = rng.beta(a, b, n_clusters)
                values = np.concatenate([rng.random(s) < q for s, q in zip(sizes, means)])
                iv = mean_interval(values, np.repeat(np.arange(n_clusters), sizes),
                                   n_bootstrap=n_bootstrap, seed=d)
                covered += iv.low <= p <= iv.high
                widths.append(iv.high - iv.low)
            rows.append(f"| {n_clusters} | rate {p} | 10-39 | {rho} | "
                        f"{covered / n_datasets:.3f} | {np.median(widths):.3f} |")
        for kind, skew, (low, high) in OTHER_ROWS:
            cover, width = _other_coverage(kind, skew, n_clusters, n_datasets, rng, (low, high))
            shape = 2.0 if skew == "moderate" else 1.0  # counts: ICC of Poisson-Gamma
            icc = (1.5 / shape) / (1.5 / shape + 1) if kind == "count" else (
                0.1 if skew == "moderate" else 0.2)
            rows.append(f"| {n_clusters} | {kind} ({skew}) | {low}-{high - 1} | "
                        f"{icc:.2f} | {cover:.3f} | {width:.3f} |")
    return rows


#: Means of values that are not 0/1: (quantity, skew, cluster sizes drawn from [a, b)).
OTHER_ROWS = [(kind, skew, sizes) for kind in ("paired difference", "count")
              for skew, sizes in (("moderate", (10, 40)), ("moderate", (2, 80)),
                                  ("strong", (10, 40)))]


def _other_coverage(kind: str, skew: str, n_clusters: int, n_datasets: int,
                    rng: np.random.Generator,
                    size_range: tuple[int, int]) -> tuple[float, float]:
    """Coverage and median width of `mean_interval` for values that are not 0/1.

    Clusters' sizes are drawn uniformly from ``size_range`` (end excluded). Paired
    differences in {-1, 0, +1} with Beta P(+1) and P(-1) per cluster: moderate, means
    0.2 and 0.1, intra-cluster correlation 0.1 (truth 0.1); strong, means 0.1 and 0.02,
    correlation 0.2 (truth 0.08). Counts Poisson with a Gamma rate of mean 1.5 per
    cluster: moderate, shape 2; strong, shape 1 (exponential).
    """
    covered, widths = 0, []
    for d in range(n_datasets):
        sizes = rng.integers(*size_range, n_clusters)
        codes = np.repeat(np.arange(n_clusters), sizes)
        if kind == "count":
            truth, shape = 1.5, 2.0 if skew == "moderate" else 1.0
            rate = rng.gamma(shape, truth / shape, n_clusters)
            values = rng.poisson(rate[codes]).astype(float)
        else:
            (p_up, p_down), k = ((0.2, 0.1), 9) if skew == "moderate" else ((0.1, 0.02), 4)
            truth = p_up - p_down
            up = rng.beta(p_up * k, (1 - p_up) * k, n_clusters)[codes]
            down = rng.beta(p_down * k, (1 - p_down) * k, n_clusters)[codes]
            u = rng.random(codes.size)
            values = (u < up).astype(float) - ((u >= up) & (u < up + down)).astype(float)
        iv = mean_interval(values, codes, seed=d)
        covered += iv.low <= truth <= iv.high
        widths.append(iv.high - iv.low)
    return covered / n_datasets, float(np.median(widths))


if __name__ == "__main__":  # ``python -m modprobe.analysis.following.coverage_table`` = ``modprobe coverage-table``
    from modprobe.commands.coverage_table import main

    sys.exit(main())
