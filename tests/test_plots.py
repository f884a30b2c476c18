"""Figures return matplotlib Figures and save PNG/PDF (docs/science.md section 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from modprobe.analysis.following.law import fit_law
from modprobe.analysis.following.layer_plots import plot_attention_mass, plot_logit_difference
from modprobe.analysis.following.logit_difference import logit_difference_matrix
from modprobe.analysis.following.oscillation import oscillation_report
from modprobe.analysis.following.plots import (
    plot_following_curve,
    plot_oscillation,
    plot_uncertainty_distribution,
)
from modprobe.analysis.following.simulate import simulate_law
from modprobe.analysis.plotting import save_figure

PNG_MAGIC = b"\x89PNG"


def _law(x0: float, seed: int):
    x, y = simulate_law(400, x0, -4.0, np.random.default_rng(seed))
    return fit_law(x, y, n_bootstrap=30, isotonic_band=False)


def test_following_curve_overlays_models_and_marks_balance_points(tmp_path: Path) -> None:
    laws = {"A": _law(-0.5, 0), "B": _law(0.3, 1), "C": _law(5.0, 2)}
    fig = plot_following_curve(laws, show_isotonic=True, path=tmp_path / "curve")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("A (logistic x*=") and legend[1].startswith("B (logistic x*=")
    assert legend[2] == "C (no crossing)"
    # The monotone balance points (hollow circles) are named per model.
    assert any(t.startswith("A monotone x*=") for t in legend)
    assert any(t.startswith("B monotone x*=") for t in legend)
    for suffix, magic in ((".png", PNG_MAGIC), (".pdf", b"%PDF")):
        assert (tmp_path / f"curve{suffix}").read_bytes().startswith(magic)


def test_uncertainty_distribution_from_mapping_and_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fig = plot_uncertainty_distribution(
        {"A": rng.uniform(-2, 2, 200), "B": np.r_[rng.normal(0, 0.5, 200), np.nan]},
        path=tmp_path / "dist.png",
    )
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    assert (tmp_path / "dist.png").read_bytes().startswith(PNG_MAGIC)
    frame = pd.DataFrame({"x": rng.uniform(-2, 2, 50)})
    assert isinstance(plot_uncertainty_distribution(frame), Figure)


def test_oscillation_plot_shows_regions_and_controls(tmp_path: Path) -> None:
    counts = np.array([2.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    x = np.array([0.0, 0.2, 1.5, -1.8, 0.0, 0.1])
    groups = ["conflict"] * 4 + ["text_irrelevant"] * 2
    report = oscillation_report(counts, x, 0.0, groups=groups, n_bootstrap=50)
    fig = plot_oscillation({"m1": report, "m2": report}, path=tmp_path / "osc.pdf")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["ambiguous", "clear", "text_irrelevant\n(control)"]
    assert (tmp_path / "osc.pdf").read_bytes().startswith(b"%PDF")


def test_logit_difference_heatmap_has_layers_by_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matrix = logit_difference_matrix(rng.normal(size=(12, 40)), rng.uniform(-2, 2, 40))
    fig = plot_logit_difference(matrix, balance_point=-0.2, path=tmp_path / "heat.png")
    image = fig.axes[0].get_images()[0]
    assert image.get_array().shape == (12, 40)
    assert image.norm.vmin == -image.norm.vmax  # diverging scale centred at 0
    assert (tmp_path / "heat.png").exists()


def test_attention_mass_panels_per_model_and_condition_span_order(tmp_path: Path) -> None:
    rows = [
        {"model": m, "condition": c, "layer": layer, "span": s, "mass": 0.1 + 0.01 * layer}
        for m in ("omni", "vl")
        for c in ("visual prompt", "audio prompt")
        for layer in range(6)
        for s in (("text", "audio", "video") if m == "omni" else ("image", "text", "context"))
    ]
    fig = plot_attention_mass(pd.DataFrame(rows), path=tmp_path / "attn.png")
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "omni | visual prompt", "omni | audio prompt", "vl | visual prompt", "vl | audio prompt"]
    assert len(fig.axes[2].get_lines()) == 3  # image, context, text of the vl model
    # the shared y axis fits the highest line of every panel
    assert all(ax.get_ylim()[1] >= 0.15 for ax in fig.axes[:4])
    rows[0]["mass"] = 0.9  # one high point in the first panel, one row only
    tall = plot_attention_mass(pd.DataFrame(rows))
    assert tall.axes[3].get_ylim()[1] >= 0.9  # the last panel shows the first one's peak
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["image", "video", "audio", "context (description)",
                      "text (question, template)"]
    assert (tmp_path / "attn.png").exists()


def test_attention_mass_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="mass"):
        plot_attention_mass(pd.DataFrame({"layer": [0], "span": ["text"]}))
    with pytest.raises(ValueError, match="unknown span"):
        plot_attention_mass(pd.DataFrame({"layer": [0], "span": ["smell"], "mass": [1.0]}))


def test_save_figure_without_path_writes_nothing() -> None:
    fig = plot_following_curve(_law(0.0, 3))
    assert save_figure(fig, None) == []


def test_attention_mass_without_model_or_condition_averages_rows() -> None:
    frame = pd.DataFrame(
        {"layer": [0, 0, 1, 1], "span": ["image"] * 4, "mass": [0.2, 0.4, 0.5, 0.7]}
    )
    fig = plot_attention_mass(frame)
    assert len(fig.axes) == 1
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [0.3, 0.6])


def _oscillation():
    counts = np.array([2.0, 1.0, 0.0, 0.0, 1.0, 0.0, 3.0, 0.0])
    x = np.array([0.0, 0.2, 1.5, -1.8, 0.0, 0.1, -0.1, 1.2])
    groups = ["conflict"] * 6 + ["text_irrelevant"] * 2
    return oscillation_report(counts, x, 0.0, groups=groups, n_bootstrap=50)


def test_two_analyses_compose_into_one_figure_through_ax(tmp_path: Path) -> None:
    """The following curve and the oscillation drawn side by side in the caller's figure."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    number = fig.number
    before = plt.get_fignums()
    drawn = [plot_following_curve({"A": _law(-0.3, 0)}, ax=left, title="following"),
             plot_oscillation({"A": _oscillation()}, ax=right, title="oscillation")]
    assert drawn == [fig, fig]  # each returns the figure it drew in, no new one
    assert plt.get_fignums() == before and plt.fignum_exists(number)  # nothing closed
    assert fig.axes == [left, right]
    assert left.get_title() == "following" and left.get_ylabel() == "P(text-following)"
    assert left.get_legend().get_texts()[0].get_text().startswith("A (x*=")
    assert [t.get_text() for t in right.get_xticklabels()][:2] == ["ambiguous", "clear"]
    written = save_figure(fig, tmp_path / "composed.png")
    assert written[0].read_bytes().startswith(PNG_MAGIC)
    plt.close(fig)


def test_multi_panel_plots_fill_a_subfigure(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from modprobe.analysis.plotting import new_figure

    rows = [{"condition": c, "layer": layer, "span": s, "mass": 0.1 + 0.02 * layer}
            for c in ("clean", "perturbed") for layer in range(4) for s in ("image", "text")]
    fig = new_figure(12, 7)
    top, bottom = fig.subfigures(2, 1)
    assert plot_attention_mass(pd.DataFrame(rows), fig=top) is top
    assert plot_logit_difference(
        logit_difference_matrix(np.random.default_rng(1).normal(size=(4, 20)),
                                np.linspace(-1, 1, 20)), ax=bottom.add_subplot()) is bottom
    assert len(top.axes) == 2 and len(bottom.axes) == 2  # two panels; heatmap + colorbar
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert save_figure(top, tmp_path / "sub.png")[0].read_bytes().startswith(PNG_MAGIC)


def test_every_plot_function_takes_ax_or_fig() -> None:
    """All plotting functions of the package compose (ax= for one axes, fig= for panels)."""
    import inspect

    from modprobe.analysis.following import layer_plots, plots
    from modprobe.analysis.interference import plots as interference_plots
    from modprobe.analysis.sabotage import plots as sabotage_plots
    from modprobe.figures import finetune
    from modprobe.organism import plots as organism_plots

    found = {}
    for module in (plots, layer_plots, interference_plots, sabotage_plots, organism_plots, finetune):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("plot_") and function.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = inspect.signature(function).parameters
    assert len(found) >= 17
    assert [n for n, params in found.items() if not {"ax", "fig"} & set(params)] == []


def test_radar_needs_polar_axes() -> None:
    from matplotlib.figure import Figure

    from modprobe.analysis.interference.plots import plot_radar

    fig = Figure()
    with pytest.raises(ValueError, match="polar"):
        plot_radar({"m": {"clean": 0.9, "MD": 0.5}}, ax=fig.add_subplot())
    polar = fig.add_subplot(projection="polar")
    assert plot_radar({"m": {"clean": 0.9, "MD": 0.5, "UF": 0.7}}, ax=polar) is fig


def test_an_unbounded_interval_keeps_its_bar_and_the_axes_their_scale() -> None:
    # matplotlib leaves out a bar with an infinite end: the point would read as precise
    from modprobe.analysis.causal import plot_causal

    knock = pd.DataFrame({"span": ["image"] * 2, "layer": [0, 1], "flipped": [0.2, 0.5],
                          "low": [0.1, 0.0], "high": [0.3, 1.0]})
    patched = pd.DataFrame({"source": ["text"] * 2, "target": ["multi"] * 2,
                            "site": ["answer"] * 2, "layer": [0, 1],
                            "restored": [0.1, 0.9], "low": [-np.inf, 0.7],
                            "high": [np.inf, 1.1]})
    right = plot_causal(knock, patched).axes[1]
    bottom, top = right.get_ylim()
    assert -1 < bottom and top < 2  # the scale is the finite data's
    drawn = [np.asarray(line.get_ydata()) for line in right.lines
             if np.array_equal(np.asarray(line.get_xdata()), [0, 0])]
    assert any(min(y) <= bottom and max(y) >= top for y in drawn)


def test_an_open_balance_point_interval_keeps_its_horizontal_bar() -> None:
    # a balance-point interval is open (inf) when replicates never cross 0.5
    from dataclasses import replace

    law = _law(0.0, 0)
    opened = replace(law, balance_point=replace(law.balance_point, ci_low=-np.inf))
    ax = plot_following_curve(opened).axes[0]
    left, right = ax.get_xlim()
    assert -3 < left and right < 3  # the scale is the finite data's
    drawn = [np.asarray(line.get_xdata()) for line in ax.lines
             if np.array_equal(np.asarray(line.get_ydata()), [0.5, 0.5])]
    assert any(min(x) <= left and max(x) >= law.balance_point.ci_high for x in drawn)
