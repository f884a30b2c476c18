"""Turn a run's tables into the section-1 statistics, the summary and the figures.

Everything here reads the tidy tables the runner wrote (``items.csv``, ``layers.csv``,
``attention_mass.npy``), so a finished run can be re-analysed without the model::

    from modprobe.run import analyze_folder             # in place; or
    summary, figures = analyze_folder("runs/organism")  # modprobe.load_run(...).reanalyze()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis.following.report import cluster_column
from modprobe.io import table_path, write_json, write_table
from modprobe.spans import span_names_of

__all__ = ["analyze_run", "attention_summary", "cluster_column",
           "following_table", "layer_top1", "logit_difference_per_item"]

FIGURES = "figures"
PROMPT_LABELS = {"vision": "image + question", "text": "description + question",
                 "multi": "image + description + question"}


def following_table(items: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """The run's items in the table format of ``python -m modprobe.following``.

    The ``cluster`` column comes along when the run has one (datasets that label their
    items' clusters, as the generator does).

    Args:
        items: The run's items table.
        model_name: The model's name (the table's ``model`` column).

    Returns:
        A prediction table :func:`~modprobe.analysis.analyze_following` reads.
    """
    columns = ["h_text", "h_vision", "y_text", "y_vision", "y_multi", "group",
               "correct_text", "correct_vision"]
    if "cluster" in items.columns:
        columns.append("cluster")
    table = items[columns].copy()
    table.insert(0, "model", model_name)
    return table


def logit_difference_per_item(items: pd.DataFrame, layers: pd.DataFrame,
                              condition: str = "multi") -> np.ndarray:
    """Per layer ``logit(Y_t) - logit(Y_v)`` of the lens, `layer item`.

    Y_t and Y_v are the model's own text-only and vision-only answers. Their lens logits
    are known when they are among the candidate answers scored at every layer; for an
    item whose answer is not a candidate (or with Y_t == Y_v) the column is NaN.

    Args:
        items: The run's items table (answers per condition).
        layers: The run's lens table.
        condition: The condition whose lens is read.

    Returns:
        The differences, `layer item`.
    """
    part = layers[layers["condition"] == condition]
    num_layers = int(part["layer"].max()) + 1
    out = np.full((num_layers, len(items)), np.nan)
    by_id = {key: frame.sort_values("layer") for key, frame in part.groupby("id", sort=False)}
    for j, row in enumerate(items.itertuples()):
        t, v = f"logit_{row.y_text}", f"logit_{row.y_vision}"
        frame = by_id.get(row.id)
        if frame is None or row.y_text == row.y_vision or t not in frame or v not in frame:
            continue
        out[:, j] = frame[t].to_numpy(float) - frame[v].to_numpy(float)
    return out


def layer_top1(items: pd.DataFrame, layers: pd.DataFrame, condition: str = "multi") -> list[list[str]]:
    """Per item, the lens top-1 token of every layer (ordered by layer).

    Args:
        items: The run's items table (its ids give the order).
        layers: The run's lens table.
        condition: The condition whose lens is read.

    Returns:
        One list of tokens per item, in the items' order (empty for an item without rows).
    """
    part = layers[layers["condition"] == condition].sort_values(["id", "layer"])
    tokens = part.groupby("id", sort=False)["top1_token"].apply(
        lambda s: [str(t) for t in s]).to_dict()
    return [tokens.get(i, []) for i in items["id"]]


def analyze_run(out: Path, items: pd.DataFrame, layers: pd.DataFrame, mass: np.ndarray,
                config: Any, model_name: str, num_layers: int) -> tuple[dict[str, Any], list[Path]]:
    """Compute the statistics of a run, write ``summary.json``/``oscillation.csv``, draw figures.

    Args:
        out: The run folder.
        items: ``items.csv`` as a frame.
        layers: ``layers.csv`` as a frame.
        mass: `item condition layer head span` attention mass.
        config: The run's :class:`~modprobe.study.StudyConfig` (bootstrap, seed, figures).
        model_name: Name used in tables and legends.
        num_layers: Decoder layers of the model.

    Returns:
        The summary (its ``lines`` are what the CLI prints) and the figure paths.
    """
    from modprobe.analysis.following.logit_difference import logit_difference_matrix
    from modprobe.io import json_ready

    lines: list[str] = []
    cluster, cluster_note = cluster_column(items)
    if cluster_note:
        lines.append(f"note: {cluster_note}")
    report, following_lines, following = _following(following_table(items, model_name),
                                                    config, model_name)
    lines += following_lines
    law = report.models[model_name].law if report is not None else None
    osc, x = _oscillation(items, layers, config, report, law, cluster)
    lines += osc.summary_lines()
    per_item = osc.per_item.copy()
    per_item.insert(0, "id", items["id"].to_numpy())
    write_table(table_path(out, "oscillation", getattr(config, "table_format", "csv")), per_item)
    attention, attention_lines = attention_summary(mass)
    lines += attention_lines
    summary = json_ready({
        "model": model_name, "n_items": len(items), "num_layers": num_layers, **following,
        "oscillation": {
            "by_region": osc.by_region.to_dict(orient="records"),
            "by_group": osc.by_group.to_dict(orient="records"),
            "ambiguous_minus_clear": list(osc.ambiguous_minus_clear),
            "radius": osc.radius, "radius_unit": osc.axis_unit},
        "attention": attention, "lines": lines})
    write_json(out / "summary.json", summary)
    figures: list[Path] = []
    if config.figures:
        figures = _draw(out / FIGURES, report, _short_name(model_name), items, layers, mass, x,
                        osc, law, logit_difference_matrix)
    return summary, figures


def _following(table: pd.DataFrame, config: Any,
               model_name: str) -> tuple[Any, list[str], dict[str, Any]]:
    """The modality-following analysis of a run's table (balance point, TFR, law).

    Args:
        table: The run's prediction table (:func:`following_table`).
        config: The analysis options (axis, entropy floor, bootstrap, seed, estimate).
        model_name: The model's name in the table.

    Returns:
        ``(report, lines, summary)``: the
        :class:`~modprobe.analysis.following.results.FollowingReport` (None when the
        table cannot be analysed), its printed lines, and its summary entries (or the
        reason it was not analysed, as ``following_error``).
    """
    from modprobe.analysis import analyze_following
    from modprobe.analysis.table import TableError

    all_conflicts = bool(getattr(config, "all_conflicts", False))
    try:
        report = analyze_following(table, axis=config.axis, entropy_floor=config.entropy_floor,
                                   n_bootstrap=config.n_bootstrap, seed=config.seed,
                                   cluster="auto", filter_correct=False if all_conflicts else None,
                                   balance_estimate=getattr(config, "balance_estimate", "auto"))
    except (TableError, ValueError) as err:
        return None, [f"following: not analysed ({err})"], {"following_error": str(err)}
    following = report.models[model_name]
    return report, following.summary_lines(), {**following.to_dict(), "model": model_name}


def _oscillation(items: pd.DataFrame, layers: pd.DataFrame, config: Any, report: Any,
                 law: Any, cluster: str | None) -> tuple[Any, np.ndarray]:
    """How often the lens's top-1 answer switches modality across layers, by region.

    Args:
        items: ``items.csv`` as a frame.
        layers: ``layers.csv`` as a frame.
        config: The analysis options (axis, entropy floor, bootstrap, seed).
        report: The following report (None: not analysed), whose filter decides which
            items lie in a region.
        law: The fitted balance law (None: no balance point, no regions).
        cluster: The cluster column of ``items`` for the intervals, or None.

    Returns:
        ``(oscillation report, x)``: the report of
        :func:`~modprobe.analysis.oscillation_report` and each item's uncertainty axis.
    """
    from modprobe.analysis import oscillation_report
    from modprobe.analysis.following.oscillation import oscillation_counts, region_items
    from modprobe.analysis.following.uncertainty import uncertainty_axis

    axis_values = uncertainty_axis(items["h_text"], items["h_vision"], axis=config.axis,
                                   entropy_floor=config.entropy_floor)
    x = np.asarray(axis_values.values, dtype=float)
    counts = oscillation_counts(layer_top1(items, layers), items["y_text"].tolist(),
                                items["y_vision"].tolist())
    # Regions go to the law's items (`region_items`): not to conflicts that follow
    # neither modality, which lie on no side of the balance point.
    both = None
    if report is not None and report.filter_correct:
        both = (items["correct_text"].astype(bool) & items["correct_vision"].astype(bool))
    in_regions = region_items(items["y_text"], items["y_vision"], items["y_multi"],
                              axis_values.degenerate, both)
    osc = oscillation_report(counts, x, law.reported_balance_point if law is not None else None,
                             groups=items["group"].tolist(), n_bootstrap=config.n_bootstrap,
                             seed=config.seed,
                             clusters=items[cluster].tolist() if cluster else None,
                             in_regions=in_regions,
                             axis_unit="nats" if config.axis == "abs" else "dH_rel units")
    return osc, x


def attention_summary(mass: np.ndarray) -> tuple[dict[str, Any], list[str]]:
    """Per condition and span, the answer position's mean attention mass of every layer.

    Args:
        mass: `item condition layer head span` (conditions in ``CONDITIONS`` order).

    Returns:
        ``{condition: {span: [mass of layer 0, 1, ...]}}`` (mean over items and heads;
        spans that get no mass in any condition are left out) and one printed line for
        the multi prompts: the description's (``context``) mass against the image's and
        the rest of the text's (``text``: question and template), at layer 0 and averaged
        over the later layers.
    """
    from modprobe.adapters import CONDITIONS

    names = span_names_of(mass.shape[-1])
    means = mass.astype(np.float64).mean(axis=(0, 3))  # condition layer span
    present = [j for j in range(len(names)) if means[..., j].max() > 0]
    table = {c: {names[j]: [float(v) for v in means[i, :, j]] for j in present}
             for i, c in enumerate(CONDITIONS)}
    multi = table["multi"]

    def at(layers: slice) -> str:
        return ", ".join(f"{n} {np.mean(multi[n][layers]):.3f}" for n in multi)

    line = f"attention (multi prompts, mean of items and heads): layer 0: {at(slice(0, 1))}"
    if means.shape[1] > 1:
        line += f"; layers 1-{means.shape[1] - 1}: {at(slice(1, None))}"
    return table, [line]


def _short_name(model: str) -> str:
    """A model name short enough for a figure title: a folder's or hub id's last part."""
    return Path(model).name or model


def _draw(folder: Path, report: Any, model_name: str, items: pd.DataFrame,
          layers: pd.DataFrame, mass: np.ndarray, x: np.ndarray, osc: Any, law: Any,
          logit_difference_matrix: Any) -> list[Path]:
    from modprobe.analysis.following import layer_plots, plots
    from modprobe.analysis.plotting import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if report is not None and report.laws:
        written += save_figure(plots.plot_following_curve(
            {model_name: next(iter(report.laws.values()))}, show_isotonic=True,
            title=f"Modality following: {model_name}"), folder / "following_curve.png")
    conflict = (items["group"] == "conflict").to_numpy()
    finite = np.isfinite(x) & conflict
    if finite.any():
        written += save_figure(plots.plot_uncertainty_distribution(
            {model_name: x[finite]}, title="Relative uncertainty of conflict items"),
            folder / "uncertainty_distribution.png")
    written += save_figure(plots.plot_oscillation(
        osc, title=f"Lens oscillation, T/V switches: {model_name}"),
        folder / "oscillation.png")
    diff = logit_difference_per_item(items, layers)
    keep = conflict & np.isfinite(x) & np.isfinite(diff).all(axis=0)
    if keep.any():
        matrix = logit_difference_matrix(diff[:, keep], x[keep])
        shown = law.reported_balance_point if law is not None else None
        bp = shown.value if shown is not None and shown.crosses else None
        written += save_figure(layer_plots.plot_logit_difference(
            matrix, balance_point=bp, title="Lens logit(Y_t) - logit(Y_v), conflict prompts"),
            folder / "logit_difference.png")
    frame = attention_table(mass, items["id"].tolist())
    # A span with no tokens in a condition (no image in text-only prompts, no description
    # in vision-only ones) gets exactly 0: leave it out of that condition's panel.
    total = frame.groupby(["condition", "span"], sort=False)["mass"].transform("sum")
    frame = frame[total > 0]
    # Condition names would read like span names ("text" twice): name the prompts instead.
    frame = frame.assign(condition=frame["condition"].map(PROMPT_LABELS))
    written += save_figure(layer_plots.plot_attention_mass(
        frame.drop(columns=["id"]), title=f"Attention from the answer position: {model_name}"),
        folder / "attention_mass.png")
    return written


def attention_table(mass: np.ndarray, ids: Sequence[str]) -> pd.DataFrame:
    """Head-averaged attention mass as a tidy table.

    Spans follow :data:`modprobe.spans.SPAN_NAMES`: ``context`` is the description,
    ``text`` the question and chat template, so the whole text is their sum. (A run
    saved before the context span existed has four spans and reads with its ``text``
    holding all text.)

    Args:
        mass: `item condition layer head span`.
        ids: Item ids, `item`.

    Returns:
        Columns ``id, condition, layer, span, mass`` (mean over heads).
    """
    from modprobe.adapters import CONDITIONS

    mean = mass.mean(axis=3)  # item condition layer span
    layer_count = mean.shape[2]
    index = pd.MultiIndex.from_product(
        [list(ids), list(CONDITIONS), range(layer_count), list(span_names_of(mean.shape[-1]))],
        names=["id", "condition", "layer", "span"])
    return pd.DataFrame({"mass": mean.reshape(-1)}, index=index).reset_index()
