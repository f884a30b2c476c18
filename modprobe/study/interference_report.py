"""Turn an interference run's tables into its summary, tables and figures.

Reads only tables (``items.csv``, ``attention_mass.npy``), so a finished run can be
re-analysed, and several runs drawn together, without the model::

    from modprobe.run import analyze_interference_folder
    summary, report, shift, figures = analyze_interference_folder("runs/interference")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.io import table_path, write_json, write_table
from modprobe.spans import SPAN_NAMES
from modprobe.stats import DEFAULT_RESAMPLES

FIGURES = "figures"
HEAVY = {"image": "image-heavy", "text": "text-heavy"}


def attention_long(mass: np.ndarray, items: pd.DataFrame,
                   span_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Head-averaged mass `row layer span` as ``id, perturbation, layer, span, mass``.

    ``span_names`` names the span axis (default: this version's ``SPAN_NAMES``; a run
    written before the context span existed has ``LEGACY_SPAN_NAMES``).

    Args:
        mass: `row layer head span` attention mass, rows as in ``items``.
        items: The run's items table (ids and perturbations of the rows).
        span_names: The span axis of ``mass`` (None: told from its width).

    Returns:
        One row per item row x layer x span.
    """
    mean = mass.mean(axis=2)
    rows, layers, width = mean.shape
    names = list(span_names) if span_names is not None else _span_names(width)
    index = pd.MultiIndex.from_product([range(rows), range(layers), names],
                                       names=["row", "layer", "span"])
    frame = pd.DataFrame({"mass": mean.reshape(-1)}, index=index).reset_index()
    frame.insert(0, "perturbation", items["perturbation"].to_numpy()[frame["row"]])
    frame.insert(0, "id", items["id"].to_numpy()[frame["row"]])
    return frame.drop(columns=["row"])


def _span_names(width: int) -> list[str]:
    from modprobe.spans import LEGACY_SPAN_NAMES

    for names in (SPAN_NAMES, LEGACY_SPAN_NAMES):
        if len(names) == width:
            return list(names)
    raise ValueError(f"attention mass has {width} spans; expected {len(SPAN_NAMES)} "
                     f"({', '.join(SPAN_NAMES)})")


def radar_axes(items: pd.DataFrame, report: Any) -> dict[str, float]:
    """Accuracy per radar spoke.

    With a ``relevant`` column: the image-heavy items' clean accuracy, then their text
    perturbations; the text-heavy items' clean accuracy, then their image perturbations.
    Without: one spoke per condition.

    Args:
        items: The run's items table.
        report: The interference report (its accuracy per condition).

    Returns:
        Accuracy by spoke label, in drawing order.
    """
    if "relevant" not in items.columns:
        return {c.perturbation: c.accuracy.estimate for c in report.conditions}
    clean = items[items["perturbation"] == "clean"]
    relevant_of = items[items["perturbation"] != "clean"].groupby("perturbation")[
        "relevant"].first().to_dict()
    out: dict[str, float] = {}
    for relevant in ("image", "text"):
        part = clean[clean["relevant"] == relevant]
        if len(part):
            out[f"clean\n({HEAVY[relevant]})"] = float(part["correct"].mean())
        for result in report.conditions:
            if relevant_of.get(result.perturbation) == relevant:
                out[result.perturbation] = result.accuracy.estimate
    return out


def analyze_interference_run(out: Path, items: pd.DataFrame, mass: np.ndarray | None,
                             names: Sequence[str], model_name: str,
                             n_bootstrap: int = DEFAULT_RESAMPLES,
                             seed: int = 0, figures: bool = True,
                             span_names: Sequence[str] | None = None,
                             table_format: str = "csv", text_baseline: str | None = None,
                             ) -> tuple[dict[str, Any], Any, pd.DataFrame, list[Path]]:
    """Accuracy, delta and attention shift of a run, written into ``out``.

    Writes the flips, draws, attention and attention-shift tables, ``summary.json`` and
    the figures.

    Args:
        out: The folder to write into (the run folder, or a re-analysis folder).
        items: The run's items table (one row per item x draw x condition).
        mass: `row layer head span` attention mass, rows as in ``items``; None or empty
            for a run without attention.
        names: The run's perturbations, in the order they are reported.
        model_name: The model's name in the summary and figures.
        n_bootstrap: Bootstrap replicates of the cluster intervals.
        seed: Seed of the bootstrap.
        figures: Draw the figures.
        span_names: The span axis of ``mass`` (None: today's
            :data:`~modprobe.spans.SPAN_NAMES`).
        table_format: ``"parquet"`` or ``"csv"``.
        text_baseline: The run's clean input of text-heavy items, named in a note (None
            for runs that predate the option, which had no image).

    Returns:
        ``(summary, report, attention shift, figure paths)``.
    """
    from modprobe.analysis.following.report import cluster_column
    from modprobe.analysis.interference.effects import analyze_interference, attention_shift
    from modprobe.perturb import perturbed_span

    cluster, _ = cluster_column(items)  # the one rule; every row labelled or none used
    report = analyze_interference(items, cluster=cluster, order=["clean", *names],
                                  n_bootstrap=n_bootstrap, seed=seed)
    write_table(table_path(out, "flips", table_format), report.per_item)
    write_table(table_path(out, "draws", table_format), report.per_draw)
    shift = pd.DataFrame()
    if mass is not None and mass.size:
        attention = attention_long(mass, items, span_names)
        write_table(table_path(out, "attention", table_format), attention)
        present = set(attention["span"])
        spans = {n: perturbed_span(n) if perturbed_span(n) in present else "text"
                 for n in names if n in set(items["perturbation"])}
        clusters = dict(zip(items["id"], items["cluster"])) if cluster else None
        shift = attention_shift(attention, spans, clusters, n_bootstrap=n_bootstrap,
                                seed=seed)
        write_table(table_path(out, "attention_shift", table_format), shift)
    lines = report.lines()
    if len(shift) and (shift["span"] == "text").any():
        lines.append("note: text perturbations' attention is on the whole text span (the "
                     "question's tokens included): this span axis has no context sub-span")
    if "relevant" in items.columns and (items["relevant"] == "text").any():
        lines.append(_baseline_note(text_baseline))
    summary: dict[str, Any] = {"model": model_name, "n_items": int(items["id"].nunique()),
                               "n_rows": len(items), **report.to_dict(), "lines": lines,
                               "text_baseline": text_baseline or "none",
                               "radar": radar_list(radar_axes(items, report))}
    if len(shift):
        summary["attention_shift"] = shift.to_dict(orient="records")
    write_json(out / "summary.json", summary)
    drawn: list[Path] = []
    if figures:
        drawn = draw_figures(out / FIGURES, {_short(model_name): (summary, shift)})
    return summary, report, shift, drawn


def _baseline_note(text_baseline: str | None) -> str:
    if text_baseline == "noise":
        return ("note: text-heavy items' clean input has a random-noise image (paper 003's "
                "baseline); RI/FB/FW replace it")
    return ("note: text-heavy items' clean input has no image (--text-baseline none); every "
            "image perturbation adds one")


def draw_figures(folder: Path, runs: dict[str, tuple[dict[str, Any], pd.DataFrame]],
                 ) -> list[Path]:
    """Radar, delta bars (all runs together) and, per run, the attention shift.

    Args:
        folder: Where the PNGs go.
        runs: ``{short model name: (summary, attention shift)}`` of each run drawn.

    Returns:
        The paths of the figures written.
    """
    from modprobe.analysis.interference.plots import (
        plot_attention_shift,
        plot_flip_rates,
        plot_radar,
    )
    from modprobe.analysis.plotting import save_figure

    written: list[Path] = []
    radar = {name: _as_dict(summary["radar"]) for name, (summary, _) in runs.items()}
    axes = list(dict.fromkeys(a for values in radar.values() for a in values))
    written += save_figure(plot_radar(radar, axes=axes), folder / "radar.png")
    rows = [{"model": name, "perturbation": c["perturbation"],
             "delta": _num(c["delta"]["estimate"]), "low": _num(c["delta"]["low"]),
             "high": _num(c["delta"]["high"])}
            for name, (summary, _) in runs.items() for c in summary["conditions"] if c["delta"]]
    if rows:
        written += save_figure(plot_flip_rates(pd.DataFrame(rows)), folder / "flip_rates.png")
    for name, (_, shift) in runs.items():
        if len(shift):
            suffix = "" if len(runs) == 1 else f"_{_slug(name)}"
            written += save_figure(plot_attention_shift(
                shift, title=f"Attention on the perturbed span: {name}"),
                folder / f"attention_shift{suffix}.png")
    return written


def radar_list(radar: dict[str, float]) -> list[dict[str, Any]]:
    """Radar spokes as an ordered list (JSON objects may be re-sorted by writers)."""
    return [{"axis": axis, "accuracy": value} for axis, value in radar.items()]


def _as_dict(radar: Any) -> dict[str, float]:
    if isinstance(radar, dict):
        return radar
    return {entry["axis"]: _num(entry["accuracy"]) for entry in radar}


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _short(model: str) -> str:
    return Path(model).name or model


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)
