"""Paired comparison of two MMA runs on the same clips (a model before and after tuning).

Accuracy: per condition and prompt type, each item's correctness in run B minus the same
item's in run A (draws averaged per item first), with the interference comparison's
cluster-aware interval and exact cluster sign-flip p
(:func:`modprobe.analysis.interference.compare.compare_interference`, the same code
``modprobe interference compare`` runs; ``aligned`` plays its clean condition, so the
flip rate of a condition is the share of answers that differ from the aligned answer of
the same clip). Attention: the change in Cohen's d per layer and span
(:func:`modprobe.analysis.mma.measures.contrast_change`); :func:`plot_contrast_change`
draws d before and after.

```python
from modprobe.analysis.mma.compare import compare_mma
table = compare_mma(run_a.tables["items"], run_b.tables["items"], ("shortcut", "tuned"))
```
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from modprobe.analysis.mma.measures import ANSWER_COLUMNS, _require
from modprobe.stats import DEFAULT_RESAMPLES

#: The MMA condition that plays the interference comparison's clean one.
BASELINE = "aligned"


def _as_interference(items: pd.DataFrame) -> pd.DataFrame:
    """An MMA items table in the layout ``compare_interference`` reads."""
    from modprobe.analysis.interference.effects import CLEAN

    _require(items, (*ANSWER_COLUMNS, "answer", "gold"), "items")
    if BASELINE not in set(items["condition"]):
        raise ValueError(f"the items table has no {BASELINE!r} condition; the paired "
                         "comparison measures flips against it: run with --conditions "
                         f"{BASELINE},...")
    perturbation = items["condition"].where(items["condition"] != BASELINE, CLEAN)
    return pd.DataFrame({"id": items["item"], "perturbation": perturbation,
                         "category": items["answer"], "correct": items["correct"],
                         "draw": items["draw"], "cluster": items["cluster"],
                         "gold": items["gold"], "ask": items["ask"]})


def compare_mma(items_a: pd.DataFrame, items_b: pd.DataFrame,
                names: tuple[str, str] = ("A", "B"), *, confidence: float = 0.95,
                n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Paired differences (B minus A) in accuracy and flip rate per condition and prompt type.

    Args:
        items_a: Run A's ``items`` table (``item, cluster, ask, condition, draw, answer,
            gold, correct``).
        items_b: Run B's, over the same clips, conditions and draws.
        names: The runs' names (in error messages).
        confidence: Interval level.
        n_bootstrap: Bootstrap replicates.
        seed: Bootstrap and sign-flip seed.

    Returns:
        One row per (ask, condition, measure): ``ask, condition, measure, n, n_clusters,
        a, b, difference, low, high, p, method`` (``aligned`` has accuracy only).

    Raises:
        ValueError / RunsDifferError: a table lacks a column or the ``aligned``
            condition, or the runs are not of the same items.
    """
    from modprobe.analysis.interference.compare import compare_interference
    from modprobe.analysis.interference.effects import CLEAN

    a, b = _as_interference(items_a), _as_interference(items_b)
    parts = []
    for ask in dict.fromkeys(a["ask"]):
        result = compare_interference(a[a["ask"] == ask].drop(columns="ask"),
                                      b[b["ask"] == ask].drop(columns="ask"), names,
                                      confidence=confidence, n_bootstrap=n_bootstrap,
                                      seed=seed)
        table = result.table.rename(columns={"perturbation": "condition"})
        table["condition"] = table["condition"].replace(CLEAN, BASELINE)
        parts.append(table.assign(ask=ask))
    out = pd.concat(parts, ignore_index=True)
    return out[["ask", *[c for c in out.columns if c != "ask"]]]


def plot_contrast_change(change: pd.DataFrame, spans: tuple[str, ...] = ("image", "audio"),
                         before: str = "before", title: str | None = None, path: Any = None,
                         fig: Any = None) -> Any:
    """Cohen's d per layer before (dashed) and after (solid, dotted...), a panel per condition.

    The y axis turns symmetric-logarithmic (linear within +-2) when some d exceeds 20 in
    absolute value.

    Args:
        change: :func:`~modprobe.analysis.mma.measures.contrast_change`'s table; with a
            ``model`` column (several tuned models against one base, stacked), a line
            per model after.
        spans: Spans to draw (a colour each).
        before: Legend name of the base run.
        title: Figure title.
        path: Where to save (see :func:`modprobe.analysis.plotting.save_figure`).
        fig: Figure or subfigure to fill (default: a new figure).

    Returns:
        The figure drawn in.
    """
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    from modprobe.analysis.plotting import SPAN_LABELS, panel_figure, save_figure, span_color

    _require(change, ("condition", "layer", "span", "d_before", "d_after"), "contrast change")
    conditions = list(dict.fromkeys(change["condition"]))
    fig = panel_figure(fig, 3.8 * len(conditions) + 2.2, 3.4)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, len(conditions), sharey=True, squeeze=False)[0]
    if "model" not in change.columns:
        change = change.assign(model="after")
    models = list(dict.fromkeys(change["model"]))
    drawn = change[change["span"].isin(spans)]
    wide = float(drawn[["d_before", "d_after"]].abs().max().max()) > 20
    styles = dict(zip(models, [("-", "o"), (":", "s"), ("-.", "^"), ("-", "v")] * 4))
    for ax, condition in zip(axes, conditions):
        cell = change[change["condition"] == condition]
        for span in spans:
            label = SPAN_LABELS.get(span, span)
            color = span_color(span)
            first = cell[(cell["span"] == span) & (cell["model"] == models[0])]
            first = first.sort_values("layer")
            ax.plot(first["layer"], first["d_before"], color=color, ls="--", marker="o",
                    ms=3, lw=1.2, alpha=0.7, label=f"{label}, {before}")
            for model in models:
                part = cell[(cell["span"] == span) & (cell["model"] == model)]
                part = part.sort_values("layer")
                ls, marker = styles[model]
                ax.plot(part["layer"], part["d_after"], color=color, ls=ls, marker=marker,
                        ms=4, lw=1.8, label=f"{label}, {model}")
        ax.axhline(0.0, color="black", lw=0.8)
        if wide:  # a near-deterministic routing gives d in the hundreds: keep small d readable
            ax.set_yscale("symlog", linthresh=2.0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_title(str(condition), fontsize=10)
    axes[0].set_ylabel("Cohen's d (visual - audio prompt)" + (", symlog" if wide else ""))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


__all__ = ["BASELINE", "compare_mma", "plot_contrast_change"]
