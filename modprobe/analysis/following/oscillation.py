"""Layer-wise oscillation between the text and the vision answer (logit lens).

docs/science.md section 1, "Oscillation" and "Heatmap". At every layer the logit lens gives
a top-1 token at the answer position; it is mapped to a *state*: ``T`` (Y_t's token),
``V`` (Y_v's token) or ``O`` (other). The oscillation count of an item is the number of
switches between T and V with 'other' ignored in between: ``V O T`` counts 1,
``T V T`` counts 2, ``O O O`` counts 0, a single layer counts 0.

**Ties** (our rule). When per-layer *logits* are given instead of top-1 tokens
(`states_from_logits`), a layer is ``T`` only if Y_t's logit is strictly larger than
Y_v's and than every other token's, ``V`` likewise; any tie for the top spot makes the
layer ``O``. An undecided layer therefore, like 'other', neither creates nor breaks a
switch: ``T (tie) V`` counts 1, ``T (tie) T`` counts 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from modprobe.analysis._arrays import normalize_answer, to_numpy
from modprobe.analysis.following.law import BalancePoint
from modprobe.analysis.following.rates import TEXT, VISION, classify_following
from modprobe.stats import DEFAULT_RESAMPLES, cluster_codes, mean_interval

STATE_TEXT = "T"
STATE_VISION = "V"
STATE_OTHER = "O"
AMBIGUOUS = "ambiguous"
CLEAR = "clear"
UNASSIGNED = "unassigned"


def layer_states(layer_top1: Sequence[Any] | np.ndarray, y_text: Any, y_vision: Any) -> list[str]:
    """Map one item's per-layer top-1 tokens to ``T`` / ``V`` / ``O`` states.

    docs/science.md section 1, "Oscillation": a layer is ``T`` when its top-1 equals Y_t's
    token, ``V`` when it equals Y_v's, ``O`` otherwise (tokens compared after
    `normalize_answer`, so ``" Red"`` matches ``"red"``; ids match ids).

    Args:
        layer_top1: ``layers`` top-1 tokens (ids or strings).
        y_text: The text-only answer (same kind as the tokens).
        y_vision: The vision-only answer.

    Returns:
        ``layers`` list of states.

    Raises:
        ValueError: When Y_t == Y_v (not a conflict: T and V cannot be told apart).
    """
    t, v = normalize_answer(y_text), normalize_answer(y_vision)
    if t is None or v is None or t == v:
        raise ValueError(f"not a conflict item: Y_t={y_text!r}, Y_v={y_vision!r}")
    states = []
    for token in list(layer_top1):
        tok = normalize_answer(token)
        states.append(STATE_TEXT if tok == t else STATE_VISION if tok == v else STATE_OTHER)
    return states


def states_from_logits(
    logit_text: Any, logit_vision: Any, logit_other_max: Any | None = None
) -> list[str]:
    """Per-layer states from lens logits, with the tie rule of this module.

    ``T`` where ``l_t > max(l_v, l_o)``, ``V`` where ``l_v > max(l_t, l_o)``, ``O``
    otherwise, including every tie for the top (docs/science.md section 1, "Oscillation";
    the tie rule is ours).

    Args:
        logit_text: ``layers`` lens logit of Y_t's token.
        logit_vision: ``layers`` lens logit of Y_v's token.
        logit_other_max: ``layers`` largest lens logit over all other tokens; None when
            only the two answers are compared (then a layer is never ``O`` unless tied).

    Returns:
        ``layers`` list of states.
    """
    lt = to_numpy(logit_text).reshape(-1)
    lv = to_numpy(logit_vision).reshape(-1)
    lo = np.full_like(lt, -np.inf) if logit_other_max is None else to_numpy(logit_other_max)
    lo = lo.reshape(-1)
    text = (lt > lv) & (lt > lo)
    vision = (lv > lt) & (lv > lo)
    return [STATE_TEXT if a else STATE_VISION if b else STATE_OTHER for a, b in zip(text, vision)]


def count_switches(states: Sequence[str]) -> int:
    """Number of T<->V switches, 'other' (and tied) layers ignored in between.

    ``count = #{k : s'_k != s'_{k+1}}`` where ``s'`` is the state sequence with every
    ``O`` removed (docs/science.md section 1, "Oscillation"). ``V O T`` -> 1, ``T V T`` -> 2,
    all ``O`` or a single layer -> 0.

    Args:
        states: ``layers`` states from `layer_states` or `states_from_logits`.

    Returns:
        The switch count.
    """
    decided = [s for s in states if s in (STATE_TEXT, STATE_VISION)]
    return sum(a != b for a, b in pairwise(decided))


def oscillation_counts(
    layer_top1: Sequence[Sequence[Any]] | np.ndarray,
    y_text: Sequence[Any] | np.ndarray,
    y_vision: Sequence[Any] | np.ndarray,
) -> np.ndarray:
    """Per-item switch counts from per-layer top-1 tokens.

    `count_switches` of `layer_states` for every item (docs/science.md section 1,
    "Oscillation"). Items with Y_t == Y_v are not conflicts: their count is NaN (flagged,
    never counted as 0).

    Args:
        layer_top1: ``items layers`` top-1 tokens (a 2-D array or a list of per-item
            sequences; items may have different layer counts).
        y_text: ``items`` text-only answers.
        y_vision: ``items`` vision-only answers.

    Returns:
        ``items`` float array of counts, NaN for non-conflict items.
    """
    rows = list(layer_top1)
    yt, yv = list(y_text), list(y_vision)
    if not len(rows) == len(yt) == len(yv):
        raise ValueError(f"{len(rows)} token rows but {len(yt)} Y_t and {len(yv)} Y_v")
    counts = np.full(len(rows), np.nan)
    for i, (row, t, v) in enumerate(zip(rows, yt, yv)):
        nt, nv = normalize_answer(t), normalize_answer(v)
        if nt is None or nv is None or nt == nv:
            continue
        counts[i] = count_switches(layer_states(row, t, v))
    return counts


def assign_regions(x: Any, balance_point: float, radius: float = 0.5) -> np.ndarray:
    """``ambiguous`` where ``|x - balance point| <= radius``, else ``clear``.

    docs/science.md, "Regions" (radius 0.5 on the dH_rel axis; in nats on the
    absolute axis H_t - H_v). NaN x gives
    ``unassigned``.

    Args:
        x: ``items`` axis values.
        balance_point: The balance point.
        radius: Half-width of the ambiguous region.

    Returns:
        ``items`` object array of region names.
    """
    xv = to_numpy(x).reshape(-1)
    regions = np.where(np.abs(xv - balance_point) <= radius, AMBIGUOUS, CLEAR).astype(object)
    regions[~np.isfinite(xv)] = UNASSIGNED
    return regions


def region_items(y_text: Any, y_vision: Any, y_multi: Any, degenerate: Any,
                 both_correct: Any | None = None) -> np.ndarray:
    """``items`` bools: the items that get a region, the law's items.

    A region says on which side of the balance point an item lies, so it is given to
    the items the law is fitted on (docs/science.md, "Regions"): decided conflicts
    (following the text or the vision; an item that follows neither is on no side),
    with a defined axis value, and passing the paper's filter when it ran
    (``both_correct``).

    Args:
        y_text: ``items`` text-only answers.
        y_vision: ``items`` vision-only answers.
        y_multi: ``items`` multimodal answers.
        degenerate: ``items`` bools: axis value undefined.
        both_correct: ``items`` bools of the correctness filter, or None (not applied).
    """
    labels = classify_following(y_text, y_vision, y_multi)
    keep = np.isin(labels, [TEXT, VISION]) & ~to_numpy(degenerate, dtype=bool).reshape(-1)
    if both_correct is not None:
        keep &= to_numpy(both_correct, dtype=bool).reshape(-1)
    return keep


@dataclass(frozen=True)
class OscillationReport:
    """Oscillation counts summarised by region and by group (docs/science.md section 1).

    Attributes:
        per_item: One row per item: ``x, group, region, count`` (count NaN for
            non-conflicts, region ``unassigned`` outside the region group).
        by_region: ``region, n, mean, ci_low, ci_high`` for ambiguous and clear items
            (empty when no balance point is available).
        by_group: ``group, n, mean, ci_low, ci_high`` for every group.
        ambiguous_minus_clear: ``(difference, ci_low, ci_high)`` of the mean counts.
        balance_point: The centre of the ambiguous region (NaN when unavailable).
        radius: Half-width of the ambiguous region.
        n_no_conflict: Items left out because Y_t == Y_v.
        note: Why regions are missing, if they are.
        n_clusters: Clusters the intervals resampled (None: single items).
        axis_unit: Unit of x and the radius (dH_rel units, or nats on the abs axis).
    """

    per_item: pd.DataFrame
    by_region: pd.DataFrame
    by_group: pd.DataFrame
    ambiguous_minus_clear: tuple[float, float, float]
    balance_point: float
    radius: float
    n_no_conflict: int
    note: str | None
    n_clusters: int | None = None
    axis_unit: str = "dH_rel units"

    def summary_lines(self) -> list[str]:
        """Lines such as ``oscillation ambiguous: 1.43 [1.21, 1.66] (n=120)``."""
        lines = []
        if np.isfinite(self.balance_point):
            lines.append(f"oscillation regions: ambiguous when |x - {self.balance_point:.3f}| <= "
                         f"{self.radius:g} {self.axis_unit}, clear otherwise")
        lines += [
            f"oscillation {row.region}: {row.mean:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
            f" (n={row.n})"
            for row in self.by_region.itertuples()
        ]
        d = self.ambiguous_minus_clear
        if np.isfinite(d[0]):
            lines.append(f"oscillation ambiguous - clear: {d[0]:.2f} [{d[1]:.2f}, {d[2]:.2f}]")
        lines += [
            f"oscillation group {row.group}: {row.mean:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
            f" (n={row.n})"
            for row in self.by_group.itertuples()
        ]
        if self.n_clusters is not None:
            lines.append(f"oscillation intervals: studentised bootstrap over {self.n_clusters}"
                         " clusters (CR2 error)")
        if self.note:
            lines.append(f"oscillation note: {self.note}")
        return lines


def _summaries(frame: pd.DataFrame, key: str, codes: np.ndarray, confidence: float,
               n_bootstrap: int, seed: int) -> pd.DataFrame:
    """Mean count and its `mean_interval` per value of ``key``.

    A continuous mean over the clusters of ``codes``.
    """
    rows = []
    for name, part in frame.groupby(key, sort=True):
        counts = part["count"].to_numpy(dtype=np.float64)
        interval = mean_interval(counts, codes[part.index.to_numpy()], kind="continuous",
                                 confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)
        # A count is never negative: a bound below 0 (a skewed bootstrap-t) says 0.
        rows.append({key: name, "n": interval.n, "mean": interval.estimate,
                     "ci_low": max(interval.low, 0.0), "ci_high": interval.high,
                     "mc_error": interval.mc_error})
    return pd.DataFrame(rows, columns=[key, "n", "mean", "ci_low", "ci_high", "mc_error"])


def _difference(counts: np.ndarray, regions: np.ndarray, codes: np.ndarray,
                confidence: float, n_bootstrap: int, seed: int) -> tuple[float, float, float]:
    """Ambiguous minus clear mean count with its interval, ``(nan,) * 3`` without both.

    The two regions share clusters, so the difference is not a mean of one set of
    items: each item is replaced by its linearised contribution (delta method), ``d +
    n (c - m_a) / n_a`` in the ambiguous region and ``d - n (c - m_c) / n_c`` in the
    clear one, whose mean is ``d`` and whose cluster totals are the difference's
    influence per cluster; `mean_interval` then gives the continuous mean's interval.
    """
    finite = np.isfinite(counts)
    amb, clr = finite & (regions == AMBIGUOUS), finite & (regions == CLEAR)
    if not amb.any() or not clr.any():
        return (float("nan"),) * 3
    m_a, m_c = float(counts[amb].mean()), float(counts[clr].mean())
    d, n = m_a - m_c, int(amb.sum() + clr.sum())
    z = np.where(amb, d + n * (counts - m_a) / amb.sum(), d - n * (counts - m_c) / clr.sum())
    both = amb | clr
    interval = mean_interval(z[both], codes[both], kind="continuous", confidence=confidence,
                             n_bootstrap=n_bootstrap, seed=seed)
    return (d, interval.low, interval.high)


def _region_centre(balance_point: float | BalancePoint | None) -> tuple[float, str | None]:
    """The centre of the ambiguous region, and why there is none."""
    if isinstance(balance_point, BalancePoint):
        note = None if balance_point.crosses else (
            f"no balance point, regions not assigned: {balance_point.reason}")
        return balance_point.value, note
    if balance_point is None:
        return float("nan"), "no balance point given, regions not assigned"
    return float(balance_point), None


def _interval_clusters(clusters: Any | None, size: int) -> tuple[np.ndarray, int | None, str]:
    """Cluster codes of the intervals, the clusters to report and a fallback note.

    Without ``clusters`` every item is its own cluster and none is reported (None); one
    cluster falls back to single items, with a note saying so.
    """
    if clusters is None:
        return np.arange(size), None, ""
    codes = cluster_codes(clusters, size)
    if int(codes.max()) + 1 >= 2:
        return codes, int(codes.max()) + 1, ""
    return np.arange(size), None, ("the items span 1 cluster, so the intervals treat "
                                   "single items as independent (too narrow if they correlate)")


def oscillation_report(
    counts: Any,
    x: Any,
    balance_point: float | BalancePoint | None,
    groups: Sequence[Any] | np.ndarray | None = None,
    region_group: str | None = "conflict",
    radius: float = 0.5,
    n_bootstrap: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: Sequence[Any] | np.ndarray | None = None,
    in_regions: Any | None = None,
    axis_unit: str = "dH_rel units",
) -> OscillationReport:
    """Mean oscillation by region (ambiguous vs clear) and by group, with intervals.

    docs/science.md section 1, "Regions" and "Oscillation": items of ``region_group``
    (all items when ``groups`` is None) with ``|x - balance point| <= radius`` are
    ambiguous, the others clear; every group also gets its mean. Every mean, and the
    ambiguous - clear difference (linearised over the clusters both regions share), is
    a continuous `mean_interval` over ``clusters`` (each item its own without them):
    the studentised cluster bootstrap on the CR2 error, which keeps its level with 8
    clusters.

    Args:
        counts: ``items`` switch counts (`oscillation_counts`; NaN = not a conflict).
        x: ``items`` uncertainty-axis values (dH_rel by default in the study).
        balance_point: A number, a `BalancePoint` (its value when it crosses), or None.
        groups: ``items`` group names (e.g. ``conflict``, ``text_irrelevant``).
        region_group: The group whose items get regions; None for all items.
        radius: Half-width of the ambiguous region.
        n_bootstrap: Bootstrap replicates per interval.
        confidence: Interval level.
        seed: Seed of the resampling.
        clusters: ``items`` cluster labels (items made together, whose counts correlate).
        in_regions: ``items`` bools: only these items of ``region_group`` get a region
            (the study passes the law's items, `region_items`); None: all of them.
        axis_unit: Unit of ``x`` and ``radius`` (``"dH_rel units"``, or ``"nats"``).

    Returns:
        `OscillationReport`.
    """
    c, xv = to_numpy(counts).reshape(-1), to_numpy(x).reshape(-1)
    if c.size != xv.size:
        raise ValueError(f"{c.size} counts but {xv.size} x values")
    g = np.asarray(["all"] * c.size if groups is None else list(groups), dtype=object)
    centre, note = _region_centre(balance_point)
    gets_region = np.ones(c.size, bool) if groups is None or region_group is None else (
        g == region_group)
    if in_regions is not None:
        gets_region &= to_numpy(in_regions, dtype=bool).reshape(-1)
    regions = np.full(c.size, UNASSIGNED, dtype=object)
    if np.isfinite(centre):
        regions[gets_region] = assign_regions(xv[gets_region], centre, radius)
    per_item = pd.DataFrame({"x": xv, "group": g, "region": regions, "count": c})
    codes, n_clusters, fallback = _interval_clusters(clusters, c.size)
    note = "; ".join(filter(None, (note, fallback))) or None
    options = {"confidence": confidence, "n_bootstrap": n_bootstrap, "seed": seed}
    return OscillationReport(
        per_item=per_item,
        by_region=_summaries(per_item[regions != UNASSIGNED], "region", codes, **options),
        by_group=_summaries(per_item, "group", codes, **options),
        ambiguous_minus_clear=_difference(c, regions, codes, **options),
        balance_point=centre, radius=radius, n_no_conflict=int(np.sum(~np.isfinite(c))),
        note=note, n_clusters=n_clusters, axis_unit=axis_unit)
