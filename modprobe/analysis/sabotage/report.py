"""The sabotage report: ``summary.json``, printed lines, tables and figures in a folder.

Report folder (``python -m modprobe.sabotage SOURCE --out DIR``)::

    DIR/summary.json       per agent every measure of MEASURES (count, n, rate, ci),
                           ECE, top-k; per
                           modality and per "group/agent" the same rates; fusion top1,
                           top3, top5 (rates)
    DIR/summary.txt        what the command printed
    DIR/agent_outputs.csv  the normalised agent table (item x agent x ranked label)
    DIR/per_agent.csv      item x agent: top label, confidence, flags
    DIR/items.csv          item: gold, fused top-1, contributors, saboteurs (both kinds)
    DIR/fused.csv          item x label: s(y), p(y), fused rank
    DIR/rates.csv          level (agent, modality, group/agent), name, measure, interval
    DIR/topk.csv           who (agent or fusion), k, coverage with interval
    DIR/calibration.csv    agent x confidence bin: confidence, accuracy with interval
    DIR/sabotaged.csv      every potential sabotage with all agents' answers
    DIR/unparsed.csv       self-assessment replies that could not be read (when any)
    DIR/figures/           reliability.png, sabotage_bars.png, topk_coverage.png
                           (+ sabotage_bars_modality.png when modalities group agents,
                           sabotage_bars_group.png when items carry groups)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from modprobe.analysis.sabotage.input import FUSION, MEASURES
from modprobe.io import json_ready, write_csv, write_json

if TYPE_CHECKING:  # pragma: no cover
    from modprobe.analysis.sabotage.analysis import SabotageReport

TABLES = ("per_agent", "items", "fused", "rates", "topk", "calibration", "sabotaged")
FIGURES = "figures"


class ReportFolderError(ValueError):
    """The report folder cannot be written (it exists) or read (tables missing)."""


def _rate(row: pd.Series) -> dict[str, Any]:
    return {"count": int(row["count"]), "n": int(row["n"]), "rate": row["rate"],
            "ci": [row["low"], row["high"]], "method": row["method"],
            **({"note": row["note"]} if row["note"] else {})}


def summary_dict(report: SabotageReport) -> dict[str, Any]:
    """The report as JSON-ready numbers (no NaN: undefined values are null)."""
    def coverage(who: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in (1, 3, 5):
            sel = report.topk[(report.topk["who"] == who) & (report.topk["k"] == k)]
            if len(sel):
                row = sel.iloc[0]
                out[f"top{k}"] = row["rate"]
                out[f"top{k}_ci"] = [row["low"], row["high"]]
        return out

    agents: dict[str, Any] = {}
    for agent in report.agents:
        modality = report.per_agent.loc[report.per_agent["agent"] == agent, "modality"].iloc[0]
        entry: dict[str, Any] = {"modality": modality, "fused": agent in report.fused_agents,
                                 "scale": report.outputs.scales.get(agent),
                                 "ece": report.ece.get(agent)}
        for measure in MEASURES:
            entry[measure] = _rate(report.rate(agent, measure))
        entry.update(coverage(agent))
        agents[agent] = entry
    modalities = {
        str(name): {m: _rate(report.rate(str(name), m, "modality")) for m in MEASURES}
        for name in dict.fromkeys(report.per_agent["modality"])}
    by_group = report.rates[report.rates["level"] == "group/agent"]
    groups = {str(name): {m: _rate(part[part["measure"] == m].iloc[0]) for m in MEASURES}
              for name, part in by_group.groupby("name", sort=False)}
    summary = {
        "source": report.outputs.source, "n_items": len(report.items),
        "agents_order": report.agents, "fused_agents": report.fused_agents,
        "tau": report.tau, "weights": report.weights,
        "confidence_scales": report.outputs.scales,
        "quality_scales": report.outputs.quality_scales,
        "agents": agents, "modalities": modalities, "groups": groups,
        "fusion": {**coverage(FUSION),
                   "n_items_with_sabotage": int((report.items["saboteurs"] != "").sum()),
                   "n_items_with_successful_sabotage":
                       int((report.items["successful_saboteurs"] != "").sum())},
        "unparsed_replies": len(report.outputs.unparsed),
        "notes": report.notes,
    }
    return json_ready(summary)


def _fmt(row: pd.Series) -> str:
    if pd.isna(row["rate"]):
        return "n/a"
    if pd.isna(row["low"]):
        return f"{row['rate']:.3f} ({row['count']}/{row['n']}, interval not identified)"
    return f"{row['rate']:.3f} ci=[{row['low']:.3f}, {row['high']:.3f}] ({row['count']}/{row['n']})"


def summary_lines(report: SabotageReport) -> list[str]:
    """Human-readable summary: one block per agent, then fusion and notes."""
    scales = ", ".join(f"{a} {s}" for a, s in report.outputs.scales.items())
    lines = [f"source: {report.outputs.source}",
             (f"items: {len(report.items)}; agents: {', '.join(report.agents)}; fused: "
             f"{', '.join(report.fused_agents)} ({report.weights} weights); tau={report.tau:g}"),
             f"confidence scale found: {scales}"]
    if report.outputs.quality_scales:
        lines.append("quality scale found: " + ", ".join(
            f"{a} {s}" for a, s in report.outputs.quality_scales.items()))
    for agent in report.agents:
        lines.append(f"{agent}:")
        for measure, name in (("accuracy", "accuracy"),
                              ("contributions", "contributor (fusion wrong without it)"),
                              ("potential_sabotage", "potential sabotage"),
                              ("successful_sabotage",
                               "successful sabotage (fusion right without it)"),
                              ("wrong_agent_fused", "wrong and fused (fused top-1 = its label)"),
                              ("wrong_agent_joint", "wrong and joint (joint top-1 = its label)")):
            row = report.rate(agent, measure)
            if not pd.isna(row["rate"]):
                lines.append(f"  {name}: {_fmt(row)}")
        tops = " ".join(f"top{k}={report.coverage(agent, k):.3f}" for k in (1, 3, 5))
        lines.append(f"  {tops} ECE={report.ece.get(agent, float('nan')):.3f}")
    tops = []
    for k in (1, 3, 5):
        sel = report.topk[(report.topk["who"] == FUSION) & (report.topk["k"] == k)].iloc[0]
        tops.append(f"top{k}={_fmt(sel)}")
    lines.append("fusion: " + " ".join(tops))
    n_sab = int((report.items["saboteurs"] != "").sum())
    n_succ = int((report.items["successful_saboteurs"] != "").sum())
    lines.append(f"items with a potential sabotage: {n_sab}; with a successful one: {n_succ} "
                 f"(table: sabotaged.csv)")
    lines += [f"note: {n}" for n in report.notes]
    return lines


def check_out(out: str | Path) -> Path:
    """Refuse an existing non-empty folder (modprobe never overwrites a report)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReportFolderError(f"--out {out} already exists and is not empty; choose a new "
                                "folder (modprobe never overwrites a report)")
    return out


def write_report(report: SabotageReport, out: str | Path, figures: bool = True) -> list[Path]:
    """Write the report folder (see the module docstring).

    Args:
        report: The analysis.
        out: A new (or empty) folder; an existing non-empty one is refused.
        figures: Also draw the figures into ``OUT/figures``.

    Returns:
        The figure files written (empty without figures).
    """
    out = check_out(out)
    write_csv(out / "agent_outputs.csv", report.outputs.table)
    for name in TABLES:
        write_csv(out / f"{name}.csv", getattr(report, name))
    if report.outputs.unparsed:
        write_csv(out / "unparsed.csv", pd.DataFrame(list(report.outputs.unparsed)))
    write_json(out / "summary.json", summary_dict(report))
    (out / "summary.txt").write_text("\n".join(summary_lines(report)) + "\n", encoding="utf-8")
    return draw_figures(out, out / FIGURES) if figures else []


def read_tables(folder: str | Path) -> dict[str, Any]:
    """The tables and summary of a report folder (for redrawing figures)."""
    import json

    folder = Path(folder)
    missing = [f"{t}.csv" for t in ("rates", "topk", "calibration")
               if not (folder / f"{t}.csv").is_file()]
    if missing or not (folder / "summary.json").is_file():
        raise ReportFolderError(f"{folder} is not a sabotage report folder (missing "
                                f"{', '.join(missing or ['summary.json'])}); make one with "
                                "python -m modprobe.sabotage SOURCE --out DIR")
    tables: dict[str, Any] = {t: pd.read_csv(folder / f"{t}.csv", keep_default_na=False,
                                             na_values=[""])
                              for t in ("rates", "topk", "calibration")}
    tables["summary"] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return tables


def draw_figures(report_folder: str | Path, out: str | Path) -> list[Path]:
    """Draw the figures of a report folder into ``out``.

    Args:
        report_folder: A folder written by :func:`write_report`.
        out: Where the PNGs go.

    Returns:
        The files written.
    """
    from modprobe.analysis.sabotage.plots import (
        plot_reliability,
        plot_sabotage_bars,
        plot_topk_coverage,
    )

    tables = read_tables(report_folder)
    summary = tables["summary"]
    out = Path(out)
    ece = {a: (v.get("ece") if v.get("ece") is not None else float("nan"))
           for a, v in summary["agents"].items()}
    written = []
    plot_reliability(tables["calibration"], ece, path=out / "reliability.png")
    written.append(out / "reliability.png")
    plot_sabotage_bars(tables["rates"], summary["tau"], path=out / "sabotage_bars.png")
    written.append(out / "sabotage_bars.png")
    rates = tables["rates"]
    modalities = rates.loc[rates["level"] == "modality", "name"].unique()
    agents = rates.loc[rates["level"] == "agent", "name"].unique()
    if len(modalities) < len(agents):
        plot_sabotage_bars(rates, summary["tau"], level="modality",
                           path=out / "sabotage_bars_modality.png")
        written.append(out / "sabotage_bars_modality.png")
    if (rates["level"] == "group/agent").any():
        plot_sabotage_bars(rates, summary["tau"], level="group/agent",
                           title="Sabotage and contribution per item group and agent",
                           path=out / "sabotage_bars_group.png")
        written.append(out / "sabotage_bars_group.png")
    plot_topk_coverage(tables["topk"], path=out / "topk_coverage.png")
    written.append(out / "topk_coverage.png")
    return written
