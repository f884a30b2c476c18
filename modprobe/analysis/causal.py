"""Causal readings of a run: knockout flip rates and patching shares by layer, with intervals.

Inputs are the study's ``knockout`` and ``patching`` tables (:mod:`modprobe.study.causal`),
one row per item x span (or direction and site) x layer. Every rate is a mean over items
with a cluster-aware interval (:func:`modprobe.stats.mean_interval`). The *decision
layer* of a span is the layer whose knockout flips the most answers; its stability is the
share of cluster-bootstrap replicates in which the same layer comes out on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.stats import DEFAULT_RESAMPLES, cluster_codes, mean_interval, resample_weights


@dataclass
class DecisionLayer:
    """The layer whose knockout of a span flips the most answers.

    Attributes:
        span: The span knocked out.
        layer: The decision layer.
        flip_rate: Its flip rate.
        low: Lower bound of the flip rate's interval.
        high: Upper bound.
        stability: Share of bootstrap replicates in which ``layer`` flips the most.
        n_items: Items.
    """

    span: str
    layer: int
    flip_rate: float
    low: float
    high: float
    stability: float
    n_items: int

    def line(self) -> str:
        """The one summary line the study prints for the decision layer."""
        return (f"decision layer ({self.span} knockout): layer {self.layer}, flips "
                f"{self.flip_rate:.3f} ci=[{self.low:.3f}, {self.high:.3f}] of {self.n_items} "
                f"items; top layer in {self.stability:.0%} of bootstrap replicates")


def _interval_rows(frame: pd.DataFrame, keys: Sequence[str], value: str,
                   clusters: dict[str, Any] | None, n_bootstrap: int, seed: int,
                   kind: str) -> pd.DataFrame:
    rows = []
    for key, part in frame.groupby(list(keys), sort=True):
        labels = None if clusters is None else [clusters.get(i, i) for i in part["id"]]
        ci = mean_interval(part[value].to_numpy(float), labels, kind=kind,
                           n_bootstrap=n_bootstrap, seed=seed)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     value: ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n,
                     "method": ci.method})
    return pd.DataFrame(rows)


def knockout_by_layer(knockout: pd.DataFrame, clusters: dict[str, Any] | None = None,
                      n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per span and layer: flip rate with its interval, and the mean shift of ``d``.

    Args:
        knockout: The study's ``knockout`` table, one row per item x span x layer with
            columns ``id, span, layer, flipped, d_clean, d_knocked``.
        clusters: Item id -> cluster label (ids not in it are clusters of one); None
            treats every item as independent.
        n_bootstrap: Bootstrap replicates for the intervals.
        seed: Seed of the bootstrap.

    Returns:
        Columns ``span, layer, flipped, low, high, n, method, shift`` where ``shift`` is
        the mean of ``d_knocked - d_clean`` (toward the text answer when positive).
    """
    table = knockout.assign(flipped=knockout["flipped"].astype(float),
                            shift=knockout["d_knocked"] - knockout["d_clean"])
    out = _interval_rows(table, ["span", "layer"], "flipped", clusters, n_bootstrap, seed,
                         "rate")
    shift = table.groupby(["span", "layer"], sort=True)["shift"].mean().reset_index()
    return out.merge(shift, on=["span", "layer"])


def decision_layer(knockout: pd.DataFrame, span: str = "image",
                   clusters: dict[str, Any] | None = None,
                   n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> DecisionLayer | None:
    """The layer where knocking out ``span`` flips the most answers.

    Args:
        knockout: The study's ``knockout`` table (columns ``id, span, layer, flipped``).
        span: The span knocked out (``"image"`` or ``"text"``).
        clusters: Item id -> cluster label (ids not in it are clusters of one); None
            treats every item as independent.
        n_bootstrap: Bootstrap replicates for the interval and the stability.
        seed: Seed of the bootstrap.

    Returns:
        The decision layer with the interval of its flip rate and its bootstrap
        stability (ties go to the lowest layer); None when ``knockout`` has no rows
        for ``span``.
    """
    part = knockout[knockout["span"] == span]
    if part.empty:
        return None
    wide = part.pivot_table(index="id", columns="layer", values="flipped", aggfunc="first")
    flips = wide.to_numpy(float)  # item layer
    rates = flips.mean(axis=0)
    best = int(np.argmax(rates))
    labels = None if clusters is None else [clusters.get(i, i) for i in wide.index]
    ci = mean_interval(flips[:, best], labels, kind="rate", n_bootstrap=n_bootstrap,
                       seed=seed)
    codes = None if labels is None else cluster_codes(labels, len(wide))
    weights = resample_weights(len(wide), n_bootstrap, np.random.default_rng(seed), codes)
    boot = (weights @ flips) / weights.sum(axis=1, keepdims=True)
    stability = float(np.mean(np.argmax(boot, axis=1) == best))
    return DecisionLayer(span, int(wide.columns[best]), float(rates[best]), ci.low, ci.high,
                         stability, len(wide))


def patching_by_layer(patching: pd.DataFrame, clusters: dict[str, Any] | None = None,
                      n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per direction, site and layer: mean share of the logit difference restored.

    Args:
        patching: The study's ``patching`` table, one row per item x direction x site x
            layer with columns ``id, source, target, site, layer, restored`` (the share
            of ``d_source - d_target`` the patch restores: 0 = none, 1 = all).
        clusters: Item id -> cluster label (ids not in it are clusters of one); None
            treats every item as independent.
        n_bootstrap: Bootstrap replicates for the intervals.
        seed: Seed of the bootstrap.

    Returns:
        Columns ``source, target, site, layer, restored, low, high, n, method``.
    """
    return _interval_rows(patching, ["source", "target", "site", "layer"], "restored",
                          clusters, n_bootstrap, seed, "continuous")


def attention_peaks(attention: pd.DataFrame, condition: str = "multi") -> dict[str, int]:
    """Per span, the layer where the answer position's mean attention mass peaks.

    Args:
        attention: Tidy attention masses with columns ``condition, span, layer, mass``
            (one row per item x head or already averaged; every row weighs the same).
        condition: The condition whose rows are read.

    Returns:
        Span name -> layer of the highest mean mass (empty when no row has
        ``condition``).
    """
    part = attention[attention["condition"] == condition]
    means = part.groupby(["span", "layer"], observed=True)["mass"].mean().reset_index()
    return {str(s): int(g.loc[g["mass"].idxmax(), "layer"]) for s, g in means.groupby(
        "span", observed=True)}


def plot_causal(knock: pd.DataFrame, patched: pd.DataFrame, path: Path | None = None) -> Any:
    """Two panels: knockout flip rate by layer per span; patching share by layer.

    Args:
        knock: :func:`knockout_by_layer`'s table.
        patched: :func:`patching_by_layer`'s table.
        path: Where to save the figure (see
            :func:`modprobe.analysis.plotting.save_figure`); None only returns it.

    Returns:
        The matplotlib figure.
    """
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from modprobe.analysis.plotting import error_bars, save_figure, unbounded_bars

    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(12, 4), layout="constrained", dpi=110)
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
    for ax, frame, value, keys, label in (
            (left, knock, "flipped", ["span"], "{} knocked out"),
            (right, patched, "restored", ["source", "target", "site"], "{} -> {} ({})")):
        for key, part in frame.groupby(keys, sort=False):
            bars = ax.errorbar(part["layer"], part[value], yerr=error_bars(
                part[value], part["low"], part["high"]), marker="o", capsize=3,
                label=label.format(*key))
            unbounded_bars(ax, part["layer"], part[value], part["low"], part["high"],
                           bars.lines[0].get_color())
    left.set(xlabel="layer", ylabel="answers flipped (share)", ylim=(-0.02, 1.02),
             title="Attention knockout at one layer")
    left.legend()
    right.axhline(0, color="grey", lw=0.8)
    right.axhline(1, color="grey", lw=0.8, ls="--")
    right.set(xlabel="layer", ylabel="share of logit difference restored",
              title="Activation patching at one layer")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if path is not None:
        save_figure(fig, path)
    return fig
