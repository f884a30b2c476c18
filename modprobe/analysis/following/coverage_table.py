"""The coverage tables of docs/science.md, regenerated from planted truths.

Every number of the tables is measured here (no claim in the docs is wider):

* few clusters: the coverage of `modprobe.stats.mean_interval` (the interval of every
  rate and mean the toolkit prints), by declared kind, on beta-binomial and
  Gamma-Poisson clusters, 8 and 12 of them, rare events included;
* oscillation: every interval `oscillation_report` prints, on planted counts;
* balance points: for each planted law (well-specified logistic, a step, a plateau
  ramp, and clustered versions of each) and two sample sizes, the share of datasets
  whose logistic and monotone intervals cover the planted balance point, and the
  median estimate; and the logistic interval with 8 clusters over many datasets.

``modprobe coverage-table --update docs/science.md`` (about 40 minutes on a shared
two-core machine, ``OMP_NUM_THREADS=1 nice``) rewrites the block between the markers
`BEGIN` and `END` in that file with exactly what it measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy.special import expit, logit

from modprobe.analysis.following.law import balance_point, fit_law
from modprobe.analysis.following.oscillation import AMBIGUOUS, CLEAR, oscillation_report
from modprobe.stats import DEFAULT_RESAMPLES, mean_interval

#: Markers of the generated block in docs/science.md.
BEGIN, END = "<!-- coverage-table: begin -->", "<!-- coverage-table: end -->"

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


def logistic_rows(n_datasets: int, sizes: Sequence[int], seed: int) -> list[str]:
    """Coverage of the logistic balance point with 8 clusters at the default replicates.

    Args:
        n_datasets: Datasets per size, each analysed with 2,000 replicates.
        sizes: Items per dataset.
        seed: Seed of the datasets.

    Returns:
        Markdown lines: header, separator, one row per size (coverage and its standard
        error).
    """
    rows = ["| n | datasets | logistic coverage | standard error |", "|---|---|---|---|"]
    rng = np.random.default_rng(seed)
    for n in sizes:
        covered = 0
        for d in range(n_datasets):
            x, y, labels = _draw("logistic", n, True, rng)
            bp = balance_point(x, y, n_bootstrap=DEFAULT_RESAMPLES, seed=d, clusters=labels)
            covered += bool(bp.crosses and bp.ci_low <= LAWS["logistic"][1] <= bp.ci_high)
        share = covered / n_datasets
        rows.append(f"| {n} | {n_datasets} | {share:.3f} | "
                    f"{np.sqrt(share * (1 - share) / n_datasets):.3f} |")
    return rows


def cluster_rows(n_datasets: int, seed: int) -> list[str]:
    """Coverage and median width of `mean_interval` with 8 and 12 clusters.

    Rows: 0/1 values from beta-binomial clusters of 10-39 items, then paired
    differences and counts (`OTHER_ROWS`), these also on unequal clusters of 2-79 items.

    Args:
        n_datasets: Datasets drawn per row.
        seed: Seed of the datasets (continuous means use the default replicates).

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
                                   kind="rate")
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
        for setting in RARE_ROWS:
            cover, width = _rare_coverage(setting, n_clusters, n_datasets, rng)
            kind, up, down, icc, draws = setting
            name = (f"rate {up}" if kind == "rate" else f"paired difference {up} - {down}")
            name += f", mean of {draws} draws" if draws > 1 else ""
            rows.append(f"| {n_clusters} | {name} | 10-39 | {icc} | {cover:.3f} | "
                        f"{width:.3f} |")
    return rows


#: Rare events: (kind, rate or P(+1), P(-1), intra-cluster correlation, draws per item).
RARE_ROWS = [("rate", 0.02, 0.0, 0.1, 1), ("rate", 0.05, 0.0, 0.1, 1),
             ("rate", 0.05, 0.0, 0.1, 5), ("rate", 0.98, 0.0, 0.1, 5),
             ("rate", 0.05, 0.0, 0.2, 1), ("paired", 0.04, 0.01, 0.1, 1),
             ("paired", 0.02, 0.02, 0.1, 1), ("paired", 0.05, 0.01, 0.1, 5),
             ("paired", 0.05, 0.01, 0.2, 5)]


def _rare_coverage(setting: tuple, n_clusters: int, n_datasets: int,
                   rng: np.random.Generator) -> tuple[float, float]:
    """Coverage and median width of `mean_interval` of the declared kind on rare events.

    Each item's 0/1 outcomes (or +1/-1 events of a paired difference) are averaged over
    its draws, with Beta cluster rates of the given mean and correlation.
    """
    kind, up, down, icc, draws = setting
    k = (1 - icc) / icc
    covered, widths = 0, []
    for d in range(n_datasets):
        codes = np.repeat(np.arange(n_clusters), rng.integers(10, 40, n_clusters))
        u = rng.random((codes.size, draws))
        p_up = rng.beta(up * k, (1 - up) * k, n_clusters)[codes, None]
        values = (u < p_up).astype(float)
        if kind == "paired":
            p_down = rng.beta(down * k, (1 - down) * k, n_clusters)[codes, None]
            values -= (u >= p_up) & (u < p_up + p_down)
        iv = mean_interval(values.mean(axis=1), codes, kind=kind, seed=d)
        covered += iv.low <= up - down <= iv.high
        widths.append(iv.high - iv.low)
    return covered / n_datasets, float(np.median(widths))


def oscillation_rows(n_datasets: int, seed: int) -> list[str]:
    """Coverage of every interval `oscillation_report` prints, with 8 and 12 clusters.

    Clusters of 20-59 items; Poisson counts whose rates a cluster's Gamma (shape 2,
    mean 1) effect multiplies; conflicts 1.5 near the balance point (``|x| <= 0.5`` of x
    uniform on [-2, 2]), 0.8 away from it; a fifth of the items are controls at 0.5.

    Args:
        n_datasets: Datasets per number of clusters.
        seed: Seed of the datasets.

    Returns:
        Markdown lines: header, separator, one row per number of clusters.
    """
    truths = {f"region {AMBIGUOUS}": 1.5, f"region {CLEAR}": 0.8,
              "ambiguous - clear": 0.7, "group conflict": 0.25 * 1.5 + 0.75 * 0.8,
              "group text_irrelevant": 0.5}
    rows = ["| clusters | " + " | ".join(truths) + " |", "|---" * (len(truths) + 1) + "|"]
    rng = np.random.default_rng(seed)
    for n_clusters in (8, 12):
        covered = dict.fromkeys(truths, 0)
        for d in range(n_datasets):
            codes = np.repeat(np.arange(n_clusters), rng.integers(20, 60, n_clusters))
            effect = rng.gamma(2.0, 0.5, n_clusters)[codes]
            x = rng.uniform(-2.0, 2.0, codes.size)
            control = rng.random(codes.size) < 0.2
            rate = np.where(control, 0.5, np.where(np.abs(x) <= 0.5, 1.5, 0.8))
            report = oscillation_report(rng.poisson(rate * effect).astype(float), x, 0.0,
                                        groups=np.where(control, "text_irrelevant",
                                                        "conflict"),
                                        clusters=codes, seed=d)
            ci = {f"region {r.region}": (r.ci_low, r.ci_high)
                  for r in report.by_region.itertuples()}
            ci |= {f"group {r.group}": (r.ci_low, r.ci_high)
                   for r in report.by_group.itertuples()}
            ci["ambiguous - clear"] = report.ambiguous_minus_clear[1:]
            for key, truth in truths.items():
                covered[key] += ci[key][0] <= truth <= ci[key][1]
        rows.append(f"| {n_clusters} | " + " | ".join(
            f"{covered[key] / n_datasets:.3f}" for key in truths) + " |")
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
        iv = mean_interval(values, codes, kind="paired" if kind != "count" else "continuous",
                           seed=d)
        covered += iv.low <= truth <= iv.high
        widths.append(iv.high - iv.low)
    return covered / n_datasets, float(np.median(widths))


if __name__ == "__main__":  # the command line is `modprobe coverage-table`; the library never imports it
    raise SystemExit("run `modprobe coverage-table` (this module is its library part)")
