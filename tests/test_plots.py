"""Figures return matplotlib Figures and save PNG/PDF (docs/science.md section 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from modprobe.analysis.law import fit_law
from modprobe.analysis.oscillation import logit_difference_matrix, oscillation_report
from modprobe.analysis.plots import (
    plot_attention_mass,
    plot_following_curve,
    plot_logit_difference,
    plot_oscillation,
    plot_uncertainty_distribution,
    save_figure,
)
from modprobe.analysis.simulate import simulate_law

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
