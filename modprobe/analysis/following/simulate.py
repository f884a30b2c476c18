"""Simulated prediction tables with a planted law (tests, docs and calibration).

The generator follows docs/science.md ("The law") backwards: draw a relative uncertainty
``x = dH_rel`` and a total entropy ``s = H_t + H_v``, set ``H_t = s (2 + x) / 4`` and
``H_v = s (2 - x) / 4`` (so that ``2 (H_t - H_v) / (H_t + H_v) = x`` exactly), then draw
text-following with ``P(text | x) = sigmoid(b (x - x*))`` where ``x*`` is the planted
balance point and ``b < 0`` the slope.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

COLORS: tuple[str, ...] = ("red", "yellow", "blue", "green", "purple", "orange")


def simulate_law(
    n_items: int,
    balance_point: float,
    slope: float,
    rng: np.random.Generator,
    x_range: tuple[float, float] = (-1.8, 1.8),
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``(x, followed_text)`` from the logistic law with a known balance point.

    ``x ~ Uniform(x_range)``, ``followed_text ~ Bernoulli(sigmoid(slope (x - x*)))``
    (docs/science.md section 1, "The law", "Balance point"): the intercept is
    ``a = -slope * x*``, so the curve crosses 0.5 at ``x*``.

    Args:
        n_items: Number of decided items.
        balance_point: Planted ``x*``.
        slope: Planted ``b``.
        rng: Random generator.
        x_range: Range of the uniform x distribution.

    Returns:
        ``items`` float x and ``items`` bool outcomes.
    """
    x = rng.uniform(x_range[0], x_range[1], n_items)
    followed = rng.random(n_items) < expit(slope * (x - balance_point))
    return x, followed



def simulate_clustered_law(
    n_clusters: int,
    items_per_cluster: int,
    balance_point: float,
    slope: float,
    cluster_sd: float,
    rng: np.random.Generator,
    x_range: tuple[float, float] = (-1.8, 1.8),
    x_spread: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw clustered ``(x, followed_text, cluster)``: items of a cluster share a shift.

    Items generated together (one scene, one color pair, one template) share more than
    their x: cluster ``c`` draws ``u_c ~ Normal(0, cluster_sd)`` once, and its items
    follow the text with ``P = sigmoid(slope (x - x*) + u_c)``. Because ``u`` is symmetric
    about 0, the population's ``P(text | x)`` still equals 0.5 exactly at ``x*``, which
    stays the balance point to recover; but outcomes within a cluster are correlated, so
    a bootstrap over items understates the uncertainty and one over clusters does not.

    Args:
        n_clusters: Number of clusters.
        items_per_cluster: Decided items per cluster.
        balance_point: Planted ``x*``.
        slope: Planted ``b``.
        cluster_sd: Standard deviation of the clusters' logit shifts (0: independent).
        rng: Random generator.
        x_range: Range of the uniform x distribution.
        x_spread: When given, x is clustered too: each cluster draws a centre uniformly
            in ``x_range`` and its items ``x ~ Normal(centre, x_spread)`` clipped to the
            range (items generated together have similar entropies). Then a test that
            treats items as independent finds trends that are not there.

    Returns:
        ``items`` float x, ``items`` bool outcomes and ``items`` int cluster labels.
    """
    clusters = np.repeat(np.arange(n_clusters), items_per_cluster)
    shift = rng.normal(0.0, cluster_sd, n_clusters)[clusters]
    if x_spread is None:
        x = rng.uniform(x_range[0], x_range[1], clusters.size)
    else:
        centre = rng.uniform(x_range[0], x_range[1], n_clusters)[clusters]
        x = np.clip(centre + rng.normal(0.0, x_spread, clusters.size), *x_range)
    followed = rng.random(clusters.size) < expit(slope * (x - balance_point) + shift)
    return x, followed, clusters


def saturated_axis(n_items: int, rng: np.random.Generator, share_piles: float = 0.6,
                   edge: float = 1.5, limit: float = 2.0) -> np.ndarray:
    """Axis values piled up near +-2, as on a saturated model's dH_rel axis.

    Args:
        n_items: Values to draw.
        rng: Random generator.
        share_piles: Expected share of values in the two piles, ``[-limit, -edge]`` and
            ``[edge, limit]`` (half each); the rest fall uniformly in ``[-edge, edge]``.
        edge: Where the piles start.
        limit: Where they end (dH_rel is bounded by 2).

    Returns:
        ``items`` float values in ``[-limit, limit]``.
    """
    u = rng.random(n_items)
    pile = u < share_piles
    left = u < share_piles / 2
    inner = rng.uniform(-edge, edge, n_items)
    width = limit - edge
    piled = np.where(left, -limit + width * rng.random(n_items),
                     edge + width * rng.random(n_items))
    return np.where(pile, piled, inner)


def simulate_step_law(
    n_clusters: int,
    items_per_cluster: int,
    step_at: float,
    p_below: float,
    p_above: float,
    cluster_sd: float,
    rng: np.random.Generator,
    share_piles: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A law that is monotone but not logistic: a step at ``step_at``.

    ``P(text | x) = p_below`` for ``x < step_at`` and ``p_above`` above it, on a logit
    scale shifted per cluster by ``Normal(0, cluster_sd)`` (symmetric, so the population
    curve still crosses 0.5 exactly at ``step_at`` when ``p_below > 0.5 > p_above``). x
    piles up near +-2 (`saturated_axis`), as on the bundled organism. A logistic fit
    misplaces the crossing of such data; the monotone fit does not.

    Args:
        n_clusters: Clusters to draw.
        items_per_cluster: Items per cluster.
        step_at: The planted balance point (where the step is).
        p_below: P(text) left of the step, before the cluster shift.
        p_above: P(text) right of the step.
        cluster_sd: Standard deviation of the per-cluster logit shift.
        rng: Random generator.
        share_piles: Share of x values piled up near +-2 (`saturated_axis`).

    Returns:
        ``items`` x, ``items`` bool outcomes, ``items`` int cluster labels.
    """
    clusters = np.repeat(np.arange(n_clusters), items_per_cluster)
    shift = rng.normal(0.0, cluster_sd, n_clusters)[clusters]
    x = saturated_axis(clusters.size, rng, share_piles)
    base = np.where(x < step_at, p_below, p_above)
    p = expit(np.log(base / (1 - base)) + shift)
    return x, rng.random(clusters.size) < p, clusters


def simulate_following_table(
    n_items: int,
    balance_point: float = -0.3,
    slope: float = -4.0,
    seed: int | np.random.Generator = 0,
    model: str = "simulated",
    share_other: float = 0.05,
    share_no_conflict: float = 0.0,
    share_incorrect: float = 0.0,
    entropy_shrink: float = 0.0,
    group: str = "conflict",
) -> pd.DataFrame:
    """A prediction table in the `python -m modprobe.following` format with a planted law.

    Per item: ``x ~ Uniform(-1.8, 1.8)``, total entropy ``s ~ LogNormal(0, 0.6)`` nats,
    ``H_t = s (2 + x) / 4``, ``H_v = s (2 - x) / 4``. The item's balance point is
    ``x* / (1 + entropy_shrink * s)`` (entropy_shrink > 0 moves it toward 0 for
    high-entropy items, as docs/science.md section 1's robustness split expects), and it
    follows the text with probability ``sigmoid(slope (x - x*_i))``. A share of items
    answer a third color ('other'), a share are not conflicts (Y_t == Y_v), and a share
    have a wrong unimodal answer (``correct_text`` or ``correct_vision`` False).

    Args:
        n_items: Rows.
        balance_point: Planted ``x*``.
        slope: Planted ``b``.
        seed: Seed or generator.
        model: Value of the ``model`` column.
        share_other: Share of conflict items answering neither modality.
        share_no_conflict: Share of items with Y_t == Y_v.
        share_incorrect: Share of items with a wrong unimodal answer.
        entropy_shrink: Strength of the entropy dependence of the balance point.
        group: Value of the ``group`` column.

    Returns:
        Columns ``h_text, h_vision, y_text, y_vision, y_multi, model, group,
        correct_text, correct_vision``.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x = rng.uniform(-1.8, 1.8, n_items)
    total = rng.lognormal(0.0, 0.6, n_items)
    h_text = total * (2 + x) / 4
    h_vision = total * (2 - x) / 4
    item_balance = balance_point / (1 + entropy_shrink * total)
    followed_text = rng.random(n_items) < expit(slope * (x - item_balance))
    colors = np.array(COLORS)
    perm = np.argsort(rng.random((n_items, len(COLORS))), axis=1)
    y_text, y_vision, y_third = (colors[perm[:, k]] for k in range(3))
    y_multi = np.where(followed_text, y_text, y_vision)
    other = rng.random(n_items) < share_other
    y_multi = np.where(other, y_third, y_multi)
    no_conflict = rng.random(n_items) < share_no_conflict
    y_text = np.where(no_conflict, y_vision, y_text)
    wrong = rng.random(n_items) < share_incorrect
    wrong_text = wrong & (rng.random(n_items) < 0.5)
    return pd.DataFrame(
        {
            "h_text": h_text,
            "h_vision": h_vision,
            "y_text": y_text,
            "y_vision": y_vision,
            "y_multi": y_multi,
            "model": model,
            "group": group,
            "correct_text": ~wrong_text,
            "correct_vision": ~(wrong & ~wrong_text),
        }
    )


def simulate_saturated_table(
    n_items: int,
    seed: int | np.random.Generator = 0,
    share_saturated: float = 0.6,
    slope_per_nat: float = -4.0,
    intercept: float = 0.3,
    model: str = "saturated",
) -> pd.DataFrame:
    """A table from a saturated model: most answers are near-certain.

    Saturated items have both entropies ``0.003 exp(3 z)`` nats (``z`` standard normal,
    capped at 0.03 nats), spanning orders of magnitude below a hundredth of a nat as
    near-certain answers do: their dH_rel is a ratio of two noise-level numbers and spreads over [-2, 2] although nothing
    distinguishes the modalities. The rest have entropies ~ Uniform(0.05, 1.5). Every
    item follows the text with ``P = sigmoid(intercept + slope_per_nat (H_t - H_v))``:
    the true driver is the absolute difference, so the absolute axis (and a floored
    relative axis) recover the law while the raw dH_rel axis smears it (docs/science.md
    section 1; the saturation remedies are ours).

    Args:
        n_items: Rows.
        seed: Seed or generator.
        share_saturated: Share of near-certain items.
        slope_per_nat: Planted slope on ``H_t - H_v``.
        intercept: Planted intercept.
        model: Value of the ``model`` column.

    Returns:
        Same columns as `simulate_following_table`.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    saturated = rng.random(n_items) < share_saturated
    h_text = np.where(saturated, _saturated_entropy(rng, n_items), rng.uniform(0.05, 1.5, n_items))
    h_vision = np.where(
        saturated, _saturated_entropy(rng, n_items), rng.uniform(0.05, 1.5, n_items)
    )
    followed_text = rng.random(n_items) < expit(intercept + slope_per_nat * (h_text - h_vision))
    table = simulate_following_table(n_items, seed=rng, model=model, share_other=0.0)
    table["h_text"] = h_text
    table["h_vision"] = h_vision
    table["y_multi"] = np.where(followed_text, table["y_text"], table["y_vision"])
    return table


def _saturated_entropy(rng: np.random.Generator, n_items: int) -> np.ndarray:
    """Entropies of near-certain answers: log-normal around 0.003 nats, capped at 0.03."""
    return np.minimum(0.003 * np.exp(3.0 * rng.standard_normal(n_items)), 0.03)
