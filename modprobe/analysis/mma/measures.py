"""MMA-Bench analyses: accuracy per condition and prompt type, attention contrast per layer.

Tables in, tables and figures out (no model code). The input tables are tidy:

- **answers**: one row per (item, condition, draw) with ``cluster`` (the clip: the
  visual and the audio question of one clip are not independent), ``ask``
  (``"visual"``/``"audio"``), ``condition``, ``draw`` (the perturbation seed) and
  ``correct`` (0/1).
- **attention**: one row per (item, condition, draw, layer, span) with ``mass`` (the
  answer position's attention on the span, averaged over heads), plus ``cluster``,
  ``ask``, ``condition``, ``draw``.

Black box: :func:`accuracy_table` (draws averaged per item first, then a cluster
bootstrap over clips, :func:`modprobe.stats.mean_interval`). White box:
:func:`attention_contrast`, Cohen's d per layer and span between the visual and the audio
prompts, ``d > 0`` meaning more attention under the visual prompt, with a cluster
bootstrap interval (:func:`modprobe.stats.bootstrap_interval`); :func:`plot_d_per_layer`
draws it and :func:`mass_curves` feeds :func:`modprobe.analysis.following.layer_plots.plot_attention_mass`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from modprobe.stats import DEFAULT_RESAMPLES, bootstrap_interval, mean_interval, not_identified
from modprobe.stats.resample import cluster_codes, resample_weights

ANSWER_COLUMNS: tuple[str, ...] = ("item", "cluster", "ask", "condition", "draw", "correct")
ATTENTION_COLUMNS: tuple[str, ...] = ("item", "cluster", "ask", "condition", "draw", "layer",
                                      "span", "mass")


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {name} table lacks column(s) {', '.join(missing)}; it needs "
                         f"{', '.join(columns)}")


def accuracy_table(answers: pd.DataFrame, *, confidence: float = 0.95,
                   n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Accuracy per condition and prompt type with a cluster-bootstrap interval.

    Each item's correctness is first averaged over its perturbation draws (the draws of
    one item are not independent evidence), then the mean over items gets an interval
    that resamples whole clips.

    Args:
        answers: The tidy answers table (:data:`ANSWER_COLUMNS`; see the module docstring).
        confidence: Nominal coverage of the interval.
        n_bootstrap: Bootstrap replicates (each draws whole clips).
        seed: Seed of the bootstrap.

    Returns:
        One row per (condition, ask): ``accuracy, low, high, n, n_clusters, draws,
        method, note`` (``draws``: the most draws any item of the cell has).

    Raises:
        ValueError: ``answers`` lacks one of :data:`ANSWER_COLUMNS`.
    """
    _require(answers, ANSWER_COLUMNS, "answers")
    per_item = (answers.groupby(["condition", "ask", "item", "cluster"], sort=False)
                .agg(correct=("correct", "mean"), draws=("draw", "nunique")).reset_index())
    rows = []
    for (condition, ask), part in per_item.groupby(["condition", "ask"], sort=False):
        interval = mean_interval(part["correct"].to_numpy(float), part["cluster"].to_numpy(),
                                 kind="rate", confidence=confidence, n_bootstrap=n_bootstrap,
                                 seed=seed)
        row = {"condition": condition, "ask": ask, "accuracy": interval.estimate,
               "low": interval.low, "high": interval.high, "n": interval.n,
               "n_clusters": interval.n_clusters, "draws": int(part["draws"].max()),
               "method": interval.method, "note": interval.note}
        rows.append(row)
    return pd.DataFrame(rows)


def cohens_d(visual: Any, audio: Any, hedges: bool = False) -> float:
    """Cohen's d of two samples with the pooled SD: ``(mean(visual) - mean(audio)) / s_p``.

    ``s_p**2 = ((n1 - 1) s1**2 + (n2 - 1) s2**2) / (n1 + n2 - 2)`` (sample variances).
    With ``hedges``, d is multiplied by ``1 - 3 / (4 (n1 + n2) - 9)`` (Hedges' g, the
    small-sample bias correction).

    Args:
        visual: The values under the visual prompt (1-D, any array-like).
        audio: The values under the audio prompt.
        hedges: Return Hedges' g instead of d.

    Returns:
        d in pooled-SD units; NaN when a group has fewer than two values or the pooled
        SD is 0.
    """
    x, y = (np.asarray(v, dtype=np.float64).reshape(1, -1) for v in (visual, audio))
    return float(_weighted_d(x[0], y[0], np.ones_like(x), np.ones_like(y), hedges)[0])


def _weighted_d(x: np.ndarray, y: np.ndarray, wx: np.ndarray, wy: np.ndarray,
                hedges: bool) -> np.ndarray:
    """`replicates` d of x vs y with `replicates items` multiplicities per group."""
    n1, n2 = wx.sum(axis=1), wy.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1, m2 = (wx @ x) / n1, (wy @ y) / n2
        ss1 = wx @ (x**2) - n1 * m1**2
        ss2 = wy @ (y**2) - n2 * m2**2
        pooled = np.maximum(ss1 + ss2, 0.0) / (n1 + n2 - 2)
        d = (m1 - m2) / np.sqrt(pooled)
        if hedges:
            d = d * (1.0 - 3.0 / (4.0 * (n1 + n2) - 9.0))
    bad = (n1 < 2) | (n2 < 2) | ~(pooled > 0)
    return np.where(bad, np.nan, d)


def d_interval(visual: Any, audio: Any, visual_clusters: Any, audio_clusters: Any, *,
               hedges: bool = False, confidence: float = 0.95,
               n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> Any:
    """Cohen's d (visual vs audio prompts) with a cluster-bootstrap percentile interval.

    The two groups share clusters (the visual and the audio question of one clip), so a
    replicate draws clips and keeps both questions of each drawn clip.

    Args:
        visual: Per-item values under the visual prompt (1-D).
        audio: Per-item values under the audio prompt (1-D).
        visual_clusters: The clip of each ``visual`` value (same length).
        audio_clusters: The clip of each ``audio`` value (same length).
        hedges: Apply Hedges' small-sample correction (:func:`cohens_d`).
        confidence: Nominal coverage of the interval.
        n_bootstrap: Bootstrap replicates (each draws whole clips).
        seed: Seed of the bootstrap.

    Returns:
        A :class:`modprobe.stats.Interval` around :func:`cohens_d`; not identified
        (NaN bounds, with a note) with fewer than two clips or when d is NaN.
    """
    x, y = np.asarray(visual, float), np.asarray(audio, float)
    return _clip_bootstrap(visual_clusters, audio_clusters, cohens_d(x, y, hedges),
                           lambda wv, wa: _weighted_d(x, y, wv, wa, hedges),
                           confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)


def _clip_bootstrap(visual_clusters: Any, audio_clusters: Any, estimate: float,
                    replicate: Any, *, confidence: float, n_bootstrap: int,
                    seed: int) -> Any:
    """Cluster-bootstrap interval of a statistic of the visual and the audio group.

    Args:
        visual_clusters: The clip of each visual-prompt item.
        audio_clusters: The clip of each audio-prompt item.
        estimate: The statistic on the data.
        replicate: ``(visual weights, audio weights) -> replicates``: the statistic under
            `replicates items` multiplicities (whole clips drawn, both questions kept).
        confidence: Nominal coverage of the interval.
        n_bootstrap: Bootstrap replicates.
        seed: Seed of the bootstrap.

    Returns:
        A :class:`modprobe.stats.Interval`; not identified (NaN bounds, with a note) with
        fewer than two clips or a non-finite estimate.
    """
    labels = np.concatenate([np.asarray(visual_clusters, object),
                             np.asarray(audio_clusters, object)])
    codes = cluster_codes(labels, labels.size)
    n_clusters = int(codes.max()) + 1 if codes.size else 0
    if n_clusters < 2 or not np.isfinite(estimate):
        return not_identified("fewer than two clips, or no spread" if n_clusters < 2
                              else "a group has under two items or no spread",
                              n=labels.size, n_clusters=n_clusters, confidence=confidence,
                              estimate=estimate)
    weights = resample_weights(labels.size, n_bootstrap, np.random.default_rng(seed), codes)
    n_visual = len(visual_clusters)
    reps = replicate(weights[:, :n_visual], weights[:, n_visual:])
    return bootstrap_interval(reps, estimate, confidence=confidence, method="cluster-bootstrap",
                              n=labels.size, n_clusters=n_clusters)


def _per_item_mass(attention: pd.DataFrame) -> pd.DataFrame:
    """Mass per (condition, ask, item, layer, span), averaged over draws."""
    _require(attention, ATTENTION_COLUMNS, "attention")
    return (attention.groupby(["condition", "ask", "item", "cluster", "layer", "span"],
                              sort=False)["mass"].mean().reset_index())


def attention_contrast(attention: pd.DataFrame, *, hedges: bool = False,
                       confidence: float = 0.95, n_bootstrap: int = DEFAULT_RESAMPLES,
                       seed: int = 0) -> pd.DataFrame:
    """Cohen's d per (condition, layer, span) between visual and audio prompts.

    Args:
        attention: The tidy attention table (:data:`ATTENTION_COLUMNS`); each item's
            mass is averaged over its draws first.
        hedges: Apply Hedges' small-sample correction (:func:`cohens_d`).
        confidence: Nominal coverage of the interval.
        n_bootstrap: Bootstrap replicates (each draws whole clips).
        seed: Seed of the bootstrap.

    Returns:
        One row per (condition, layer, span): ``d, low, high, n, n_clusters, method,
        note`` (``d > 0``: the span gets more attention under the visual prompt).
        Conditions with one prompt type only (``audio_removed``, ``frames_zeroed``) have
        no contrast and no rows.

    Raises:
        ValueError: ``attention`` lacks one of :data:`ATTENTION_COLUMNS`.
    """
    mass = _per_item_mass(attention)
    rows = []
    for (condition, layer, span), part in mass.groupby(["condition", "layer", "span"],
                                                       sort=False):
        vis, aud = part[part["ask"] == "visual"], part[part["ask"] == "audio"]
        if vis.empty or aud.empty:  # a condition run for one prompt type only (removals)
            continue
        interval = d_interval(vis["mass"], aud["mass"], vis["cluster"], aud["cluster"],
                              hedges=hedges, confidence=confidence, n_bootstrap=n_bootstrap,
                              seed=seed)
        rows.append({"condition": condition, "layer": int(layer), "span": span,
                     "d": interval.estimate, "low": interval.low, "high": interval.high,
                     "n": interval.n, "n_clusters": interval.n_clusters,
                     "method": interval.method, "note": interval.note})
    return pd.DataFrame(rows)


def contrast_change(before: pd.DataFrame, after: pd.DataFrame, *, hedges: bool = False,
                    confidence: float = 0.95, n_bootstrap: int = DEFAULT_RESAMPLES,
                    seed: int = 0) -> pd.DataFrame:
    """Change in Cohen's d (after minus before) per condition, layer and span, paired.

    Two attention tables of the same items (one model before and after fine-tuning, say)
    give d per cell as :func:`attention_contrast` does; the change gets a paired cluster
    bootstrap: each replicate draws clips once and recomputes both d's on them.

    Args:
        before: The attention table of the first run (:data:`ATTENTION_COLUMNS`).
        after: The attention table of the second run, of the same items and clips.
        hedges: Apply Hedges' small-sample correction (:func:`cohens_d`).
        confidence: Nominal coverage of the interval.
        n_bootstrap: Bootstrap replicates (each draws whole clips).
        seed: Seed of the bootstrap.

    Returns:
        One row per (condition, layer, span): ``d_before, d_after, change, low, high,
        n, n_clusters, method, note``.

    Raises:
        ValueError: a table lacks one of :data:`ATTENTION_COLUMNS`, or the tables do
            not hold the same items in the same clusters.
    """
    mass = {name: _per_item_mass(table).set_index(["condition", "ask", "item", "cluster",
                                                    "layer", "span"])["mass"]
            for name, table in (("before", before), ("after", after))}
    if not mass["before"].index.sort_values().equals(mass["after"].index.sort_values()):
        raise ValueError("the before and after attention tables differ in their items, "
                         "clusters, conditions, layers or spans; compare runs of the same clips")
    joined = pd.DataFrame({"before": mass["before"], "after": mass["after"]}).reset_index()
    rows = []
    for (condition, layer, span), part in joined.groupby(["condition", "layer", "span"],
                                                         sort=False):
        part = part.sort_values(["ask", "item"])
        vis, aud = part[part["ask"] == "visual"], part[part["ask"] == "audio"]
        if vis.empty or aud.empty:
            continue
        d = {k: cohens_d(vis[k], aud[k], hedges) for k in ("before", "after")}
        row = {"condition": condition, "layer": int(layer), "span": span,
               "d_before": d["before"], "d_after": d["after"]}
        values = {k: (vis[k].to_numpy(float), aud[k].to_numpy(float))
                  for k in ("before", "after")}

        def change_replicates(wv: np.ndarray, wa: np.ndarray, values=values) -> np.ndarray:
            """Replicates of d after minus d before.

            Args:
                wv: `replicates items` weights of the visual-prompt items.
                wa: The same for the audio-prompt items.
                values: The before and after (visual, audio) masses.

            Returns:
                `replicates` changes in d.
            """
            return (_weighted_d(*values["after"], wv, wa, hedges)
                    - _weighted_d(*values["before"], wv, wa, hedges))

        interval = _clip_bootstrap(vis["cluster"].to_numpy(object),
                                   aud["cluster"].to_numpy(object), d["after"] - d["before"],
                                   change_replicates, confidence=confidence,
                                   n_bootstrap=n_bootstrap, seed=seed)
        row.update({"change": interval.estimate, "low": interval.low, "high": interval.high,
                    "n": interval.n, "n_clusters": interval.n_clusters,
                    "method": interval.method, "note": interval.note})
        rows.append(row)
    return pd.DataFrame(rows)


def mass_curves(attention: pd.DataFrame) -> pd.DataFrame:
    """Per-item mass (draws averaged) in the layout of ``plot_attention_mass``.

    Columns ``model`` (the MMA condition), ``condition`` (``"visual prompt"`` or
    ``"audio prompt"``), ``layer``, ``span``, ``mass``: one panel per MMA condition and
    prompt type, a curve per span.
    """
    mass = _per_item_mass(attention)
    return pd.DataFrame({"model": mass["condition"], "condition": mass["ask"] + " prompt",
                         "layer": mass["layer"], "span": mass["span"], "mass": mass["mass"]})


def plot_d_per_layer(contrast: pd.DataFrame, title: str | None = None,
                     path: Any = None, fig: Any = None) -> Any:
    """Cohen's d per layer: a line per span with its interval band, a panel per condition.

    MMA-Bench's white-box figure. Above 0: more attention under the visual prompt.

    Args:
        contrast: :func:`attention_contrast`'s table (``condition, layer, span, d, low,
            high``).
        title: Figure title.
        path: Where to save (see :func:`modprobe.analysis.plotting.save_figure`).
        fig: Figure or subfigure to fill with the panels (default: a new figure).

    Returns:
        The figure (or subfigure) drawn in.
    """
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    from modprobe.analysis.plotting import SPAN_LABELS, panel_figure, save_figure, span_color
    from modprobe.spans import SPAN_NAMES

    _require(contrast, ("condition", "layer", "span", "d", "low", "high"), "contrast")
    conditions = list(dict.fromkeys(contrast["condition"]))
    cols = min(3, len(conditions))
    rows = -(-len(conditions) // cols)
    fig = panel_figure(fig, 3.6 * cols + 2.0, 3.2 * rows)
    with sns.axes_style("whitegrid"):
        grid = fig.subplots(rows, cols, sharey=True, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(conditions):]:
        ax.set_axis_off()
    spans = [s for s in SPAN_NAMES if s in set(contrast["span"])]
    for ax, condition in zip(axes, conditions):
        cell = contrast[contrast["condition"] == condition]
        for span in spans:
            part = cell[cell["span"] == span].sort_values("layer")
            color = span_color(span)
            ax.fill_between(part["layer"], part["low"], part["high"], color=color, alpha=0.18,
                            lw=0)
            ax.plot(part["layer"], part["d"], color=color, marker="o", ms=3, lw=1.6,
                    label=SPAN_LABELS.get(span, span))
        ax.axhline(0.0, color="black", lw=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_title(str(condition), fontsize=10)
    for row in grid:
        row[0].set_ylabel("Cohen's d (visual - audio prompt)")
    axes[cols - 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


__all__ = ["ANSWER_COLUMNS", "ATTENTION_COLUMNS", "accuracy_table", "attention_contrast",
           "cohens_d", "contrast_change", "d_interval", "mass_curves", "plot_d_per_layer"]
