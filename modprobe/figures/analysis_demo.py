"""Generate the figures of docs/analyses.md from simulated data with planted truths.

    python figures/analysis_demo.py [--out docs/figures] [--bootstrap 1000]

Every panel comes from `modprobe.analysis.following.simulate` (or the small simulators below),
so the right answer is known: three models with planted balance points -0.6, -0.2 and
+0.15; a model whose balance point moves toward 0 for uncertain items; a saturated model;
per-layer logit-lens trajectories whose noise is largest near the balance point.
The printed report is what `modprobe following` prints for the same tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from modprobe.analysis import (
    analyze_following,
    count_switches,
    logit_difference_matrix,
    oscillation_report,
    states_from_logits,
)
from modprobe.analysis.following.layer_plots import plot_attention_mass, plot_logit_difference
from modprobe.analysis.following.plots import (
    plot_following_curve,
    plot_oscillation,
    plot_uncertainty_distribution,
)
from modprobe.analysis.following.results import FollowingReport, ModelFollowing
from modprobe.analysis.following.simulate import simulate_following_table, simulate_saturated_table

PLANTED = {"A, planted -0.60": -0.6, "B, planted -0.20": -0.2, "C, planted +0.15": 0.15}


def simulate_lens(
    x: np.ndarray,
    followed_text: np.ndarray,
    balance: float,
    n_layers: int,
    rng: np.random.Generator,
    noise: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Toy logit-lens trajectories: ``layers items`` logits of Y_t, Y_v and the best other.

    The answer's lead ``d = logit(Y_t) - logit(Y_v)`` grows over late layers toward the
    final answer, more strongly the farther the item is from the balance point; an AR(1)
    noise peaking in middle-to-late layers makes near-balance items flip back and forth.
    Early layers are dominated by some other token.

    Args:
        x: The items' uncertainty axis values.
        followed_text: Whether each item's final answer follows the text.
        balance: The planted balance point.
        n_layers: Layers of the toy model.
        rng: The random generator.
        noise: Scale of the AR(1) noise.

    Returns:
        ``layers items`` logits of Y_t, of Y_v and of the best other token.
    """
    layers = np.arange(n_layers)[:, None]
    ramp = expit((layers - 0.6 * n_layers) / 2.5)
    hump = np.exp(-0.5 * ((layers - 0.65 * n_layers) / (0.15 * n_layers)) ** 2)
    sign = np.where(followed_text, 1.0, -1.0)
    strength = 0.4 + 3.0 * np.minimum(np.abs(x - balance), 1.5)
    walk = np.zeros((n_layers, x.size))
    for layer in range(1, n_layers):
        walk[layer] = 0.6 * walk[layer - 1] + rng.normal(size=x.size)
    d = sign * strength * ramp + noise * 1.6 * hump * walk / (0.5 + strength)
    base = 4.0 * ramp
    other = 3.0 * (1 - ramp) + 0.7 + 0.3 * rng.normal(size=(n_layers, x.size))
    return base + d / 2, base - d / 2, other


def main(argv: list[str] | None = None) -> int:
    """Write the figures of docs/analyses.md and print the reports behind them.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``): ``--out DIR`` (the
            PNG folder, default ``docs/figures``) and ``--bootstrap N`` (replicates).

    Returns:
        The exit code, 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"), help="PNG folder")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    boot = {"n_bootstrap": args.bootstrap, "seed": 0}
    report = _law_figures(out, boot)
    _split_figure(out, boot)
    _saturation_figures(out, boot, report)
    rng = np.random.default_rng(30)
    _oscillation_figures(out, report.models[next(iter(PLANTED))], rng)
    plot_attention_mass(
        simulate_attention(rng),
        title="Attention mass received per modality",
        path=out / "attention_mass.png",
    )
    print(f"figures written to {out}")
    return 0


def _law_figures(out: Path, boot: dict[str, int]) -> FollowingReport:
    """Three models with planted balance points: their curves, and model A's isotonic fit.

    Args:
        out: Folder of the PNGs.
        boot: ``n_bootstrap`` and ``seed`` of every analysis.

    Returns:
        The three models' report (printed here; its items feed the later figures).
    """
    table = pd.concat(
        [
            simulate_following_table(1500, x0, slope=-3.5, seed=i, model=name)
            for i, (name, x0) in enumerate(PLANTED.items())
        ],
        ignore_index=True,
    )
    report = analyze_following(table, **boot)
    print("\n".join(report.summary_lines()), "\n")
    plot_following_curve(
        report.laws,
        title="Text-following against relative uncertainty",
        path=out / "following_curve_models.png",
    )
    name_a = next(iter(PLANTED))
    plot_following_curve(
        {name_a: report.models[name_a].law},
        show_isotonic=True,
        title="Logistic fit (band) vs isotonic fit (dashed)",
        path=out / "following_curve_isotonic.png",
    )
    return report


def _split_figure(out: Path, boot: dict[str, int]) -> None:
    """The robustness split: the balance point moves toward 0 for uncertain items.

    Args:
        out: Folder of the PNG.
        boot: ``n_bootstrap`` and ``seed`` of the analysis.
    """
    split_table = simulate_following_table(
        4000, balance_point=-0.8, slope=-3.5, seed=10, entropy_shrink=1.5, model="split demo"
    )
    split = analyze_following(split_table, **boot).models["split demo"].split
    plot_following_curve(
        {
            f"low entropy, $H_t+H_v \\leq$ {split.median_total:.2f}": split.low,
            "high entropy": split.high,
        },
        title="Median split of total entropy",
        path=out / "entropy_split.png",
    )


def _saturation_figures(out: Path, boot: dict[str, int], report: FollowingReport) -> None:
    """A saturated model on raw dH_rel, floored dH_rel and the absolute axis.

    Args:
        out: Folder of the PNGs.
        boot: ``n_bootstrap`` and ``seed`` of every analysis.
        report: The three models' report (model A's axis is drawn for comparison).
    """
    sat = simulate_saturated_table(3000, seed=20, share_saturated=0.85)
    raw = analyze_following(sat, **boot).models["saturated"]
    floored = analyze_following(sat, entropy_floor=0.05, **boot).models["saturated"]
    # Equal-width bins: on the absolute axis most items sit in a narrow pile at 0.
    absolute = analyze_following(sat, axis="abs", bin_strategy="uniform", **boot).models[
        "saturated"
    ]
    for label, m in (("raw dH_rel", raw), ("floor 0.05", floored), ("abs", absolute)):
        print(
            f"[saturated, {label}] saturation={m.saturation:.2f}; "
            f"{m.law.monotonicity.summary()}; {m.law.balance_point.summary()}"
        )
    plot_following_curve(
        {"raw": raw.law, "entropy floor 0.05 nats": floored.law},
        title="Saturated model: raw vs floored $\\Delta H_{rel}$",
        path=out / "saturation_rel_vs_floor.png",
    )
    plot_following_curve(
        absolute.law,
        x_label="$H_t - H_v$ (nats)",
        title="Saturated model: absolute axis",
        path=out / "saturation_abs.png",
    )
    name_a = next(iter(PLANTED))
    plot_uncertainty_distribution(
        {name_a: report.models[name_a].items["x"], "saturated model": raw.items["x"]},
        title=r"$\Delta H_{rel}$ per model",
        path=out / "uncertainty_distribution.png",
    )
    plot_uncertainty_distribution(
        {"raw": raw.items["x"], "entropy floor 0.05": floored.items["x"]},
        title="Saturated model: where items land",
        path=out / "saturation_distribution.png",
    )


def _oscillation_figures(out: Path, model: ModelFollowing, rng: np.random.Generator) -> None:
    """Oscillation by region and the logit-difference heatmap of one model's lens.

    Args:
        out: Folder of the PNGs.
        model: The model whose law items get toy lens trajectories (with 400 controls).
        rng: Random generator of the trajectories.
    """
    items = model.items[model.items["in_law"]].reset_index(drop=True)
    bp = model.law.balance_point
    n_layers = 32
    followed = (items["label"] == "text").to_numpy()
    lt, lv, lo = simulate_lens(items["x"].to_numpy(), followed, bp.value, n_layers, rng)
    counts = [
        count_switches(states_from_logits(lt[:, i], lv[:, i], lo[:, i])) for i in range(len(items))
    ]
    n_control = 400
    x_control = rng.uniform(-1.8, 1.8, n_control)
    # Controls: the text names another shape, so the text answer is a weak rival.
    ct, cv, co = simulate_lens(
        x_control, rng.random(n_control) < 0.2, 0.0, n_layers, rng, noise=0.5
    )
    counts += [
        count_switches(states_from_logits(ct[:, i], cv[:, i], co[:, i])) for i in range(n_control)
    ]
    osc = oscillation_report(
        np.asarray(counts, float),
        np.r_[items["x"], x_control],
        bp,
        groups=["conflict"] * len(items) + ["text_irrelevant"] * n_control,
    )
    print("\n".join(osc.summary_lines()))
    plot_oscillation(
        {model.model: osc},
        title="Logit-lens oscillation by region",
        path=out / "oscillation_by_region.png",
    )
    plot_logit_difference(
        logit_difference_matrix(lt - lv, items["x"]),
        balance_point=bp.value,
        title=f"model {model.model}: logit($Y_t$) - logit($Y_v$) by layer",
        path=out / "logit_difference_heatmap.png",
    )


def simulate_attention(rng: np.random.Generator) -> pd.DataFrame:
    """Toy attention mass per modality span of two models, 28 layers and 8 heads.

    A vision-language model under one condition, an omni model under a visual and an
    audio question; the description (``context``) is read early, then left
    (docs/organism.md); each head's mass is the span's share times log-normal noise.

    Args:
        rng: Random generator of the noise.

    Returns:
        Tidy frame with columns ``model, condition, layer, span, head, mass``.
    """
    rows = []
    for model, spans in (
        ("vision-language", ("image", "context", "text")),
        ("omni", ("video", "audio", "context", "text")),
    ):
        conditions = ("visual question", "audio question") if model == "omni" else ("conflict",)
        for condition in conditions:
            for layer in range(28):
                depth = layer / 27
                raw_mass = {
                    "text": 2.0 + 1.5 * depth,
                    "context": 0.3 + 2.0 * (1 - depth) ** 3,
                    "image": 1.2 + np.sin(np.pi * depth),
                    "video": 1.0 + 0.8 * np.sin(np.pi * depth),
                    "audio": 0.5 + 0.3 * depth,
                }
                if condition == "audio question":
                    raw_mass["audio"] += 0.6 * np.sin(np.pi * depth)
                total = sum(raw_mass[s] for s in spans)
                rows += [{"model": model, "condition": condition, "layer": layer, "span": s,
                          "head": head, "mass": raw_mass[s] / total * rng.lognormal(0, 0.15)}
                         for head in range(8) for s in spans]
    return pd.DataFrame(rows)
