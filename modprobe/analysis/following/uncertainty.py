"""Answer-position uncertainty: entropies and the relative-uncertainty axis.

docs/science.md section 1 ("Uncertainty", "Relative uncertainty"). Entropies are in nats.
Confident answers saturate: their entropies are a few thousandths of a nat, so a tiny
absolute difference becomes an extreme dH_rel (close to +-2). Two remedies are offered:
an entropy floor applied before the ratio, and the absolute difference H_t - H_v as an
alternative axis (`uncertainty_axis(..., axis="abs")`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modprobe.analysis._arrays import to_numpy

#: ``H_t + H_v`` (nats) at or below which dH_rel is undefined. float32 resolves a
#: probability near 1 only to about 6e-8, and an answer with top-1 probability 1 - e has
#: entropy about e (1 - log e): 1e-6 nats is e ~ 6e-8, the resolution limit. Below it
#: both entropies are rounding noise and their ratio 2 (H_t - H_v) / (H_t + H_v) can land
#: anywhere in [-2, 2]; such items are flagged and left out (docs/science.md).
DEGENERATE_TOTAL = 1e-6
#: Entropy (nats) below which an answer counts as near-certain (top-1 probability above
#: about 0.99): the saturation diagnostic of the absolute axis.
NEAR_CERTAIN = 0.05

Axis = Literal["rel", "abs"]


def log_softmax(scores: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax, ``log p_i = s_i - logsumexp(s)``.

    Args:
        scores: Logits or (possibly unnormalised) log-probabilities, ``... vocab``;
            numpy array or torch tensor. ``-inf`` entries get probability 0.
        axis: The vocabulary axis.

    Returns:
        float64 log-probabilities with the input's shape.
    """
    s = to_numpy(scores)
    peak = np.max(s, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    shifted = s - peak
    with np.errstate(divide="ignore"):
        log_total = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted - log_total


def entropy(
    scores: Any,
    axis: int = -1,
    candidates: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Shannon entropy of the distribution given by logits or log-probabilities.

    ``H = -sum_y p(y) log p(y)`` in nats with ``p = softmax(scores)`` (docs/science.md section
    1, "Uncertainty"). Logits and normalised log-probabilities give the same result
    because softmax ignores an additive constant. Log-probabilities of only the top-k
    tokens (as closed APIs return them) are renormalised over those k tokens, which
    under-estimates the full-vocabulary entropy; pass full vectors when you have them.

    Args:
        scores: ``... vocab`` logits or log-probabilities (numpy or torch).
        axis: The vocabulary axis.
        candidates: Optional token indices along ``axis``. When given, the entropy is
            that of the distribution restricted to (renormalised over) those
            candidate answers, ``p_c(y) = p(y) / sum_{y' in C} p(y')`` (the "ours"
            second view of docs/science.md section 1).

    Returns:
        ``...`` float64 array of entropies (the vocabulary axis removed).
    """
    s = to_numpy(scores)
    if candidates is not None:
        s = np.take(s, np.asarray(candidates, dtype=np.int64), axis=axis)
    log_p = log_softmax(s, axis=axis)
    p = np.exp(log_p)
    # 0 * log 0 is 0 by continuity: zero the -inf log-probabilities before multiplying.
    terms = p * np.where(p > 0, log_p, 0.0)
    return np.maximum(-np.sum(terms, axis=axis), 0.0)


@dataclass(frozen=True)
class UncertaintyAxis:
    """The x axis of the law for a set of items.

    Attributes:
        values: ``items`` axis values; NaN where ``degenerate``.
        degenerate: ``items`` bool; True where the value is undefined (H_t + H_v ~ 0 on
            the relative axis) and the item must be left out of fits (never divided by
            zero silently).
        axis: ``"rel"`` (dH_rel, unitless, in [-2, 2]) or ``"abs"`` (H_t - H_v, nats).
        entropy_floor: Floor applied to both entropies before computing the axis.
        label: Axis label for plots and reports.
    """

    values: np.ndarray
    degenerate: np.ndarray
    axis: Axis
    entropy_floor: float
    label: str

    @property
    def n_degenerate(self) -> int:
        """Number of items whose axis value is undefined."""
        return int(self.degenerate.sum())


def relative_uncertainty(h_text: Any, h_vision: Any, entropy_floor: float = 0.0) -> UncertaintyAxis:
    """Relative uncertainty ``dH_rel = 2 (H_t - H_v) / (H_t + H_v)``.

    docs/science.md section 1, "Relative uncertainty": in [-2, 2], negative when the model is
    more confident in the text. Entropies are first floored, ``H <- max(H, floor)``;
    a floor of a few hundredths of a nat stops saturated items (both entropies ~1e-3)
    from landing at +-2 because of differences that carry no information. Items with
    ``H_t + H_v <= DEGENERATE_TOTAL`` (1e-6 nats) after flooring are flagged
    ``degenerate`` and get NaN.

    Args:
        h_text: ``items`` entropies of the text-only run, H_t (nats, >= 0).
        h_vision: ``items`` entropies of the vision-only run, H_v (nats, >= 0).
        entropy_floor: Lower bound applied to both entropies (nats, >= 0).

    Returns:
        An `UncertaintyAxis` with ``axis="rel"``.
    """
    return uncertainty_axis(h_text, h_vision, axis="rel", entropy_floor=entropy_floor)


def uncertainty_axis(
    h_text: Any, h_vision: Any, axis: Axis = "rel", entropy_floor: float = 0.0
) -> UncertaintyAxis:
    """The law's x axis: relative (``dH_rel``) or absolute (``H_t - H_v``) uncertainty.

    ``rel``: ``x = 2 (H_t' - H_v') / (H_t' + H_v')``; ``abs``: ``x = H_t' - H_v'`` in
    nats, with ``H' = max(H, entropy_floor)`` (docs/science.md section 1, "Relative
    uncertainty"; the absolute axis and the floor are ours, for saturated models). The
    absolute axis is never degenerate and keeps saturated items near 0 instead of +-2.

    Args:
        h_text: ``items`` H_t in nats.
        h_vision: ``items`` H_v in nats.
        axis: ``"rel"`` or ``"abs"``.
        entropy_floor: Floor applied to both entropies first (nats, >= 0).

    Returns:
        An `UncertaintyAxis`.

    Raises:
        ValueError: On negative/NaN entropies, a negative floor or an unknown axis.
    """
    ht = to_numpy(h_text).reshape(-1)
    hv = to_numpy(h_vision).reshape(-1)
    if ht.shape != hv.shape:
        raise ValueError(f"h_text has {ht.size} items but h_vision has {hv.size}")
    for name, h in (("h_text", ht), ("h_vision", hv)):
        if np.any(~np.isfinite(h)) or np.any(h < 0):
            raise ValueError(f"{name} must hold finite, non-negative entropies")
    if not entropy_floor >= 0:
        raise ValueError(f"entropy_floor must be >= 0, got {entropy_floor}")
    ht = np.maximum(ht, entropy_floor)
    hv = np.maximum(hv, entropy_floor)
    floor_note = f", floor {entropy_floor:g} nats" if entropy_floor > 0 else ""
    if axis == "abs":
        return UncertaintyAxis(
            values=ht - hv,
            degenerate=np.zeros(ht.shape, dtype=bool),
            axis="abs",
            entropy_floor=float(entropy_floor),
            label=f"$H_t - H_v$ (nats{floor_note})",
        )
    if axis != "rel":
        raise ValueError(f"axis must be 'rel' or 'abs', got {axis!r}")
    total = ht + hv
    degenerate = total <= DEGENERATE_TOTAL
    safe_total = np.where(degenerate, 1.0, total)
    values = np.where(degenerate, np.nan, 2.0 * (ht - hv) / safe_total)
    return UncertaintyAxis(
        values=values,
        degenerate=degenerate,
        axis="rel",
        entropy_floor=float(entropy_floor),
        label=r"$\Delta H_{rel}$" + (f" (floor {entropy_floor:g} nats)" if floor_note else ""),
    )


def absolute_uncertainty(h_text: Any, h_vision: Any, entropy_floor: float = 0.0) -> UncertaintyAxis:
    """Absolute uncertainty difference ``H_t - H_v`` (nats); see `uncertainty_axis`.

    docs/science.md section 1 (ours: the alternative axis for saturated models).

    Args:
        h_text: ``items`` H_t in nats.
        h_vision: ``items`` H_v in nats.
        entropy_floor: Floor applied to both entropies first.

    Returns:
        An `UncertaintyAxis` with ``axis="abs"``.
    """
    return uncertainty_axis(h_text, h_vision, axis="abs", entropy_floor=entropy_floor)


def saturation_share(values: Any, threshold: float = 1.5) -> float:
    """Share of items with ``|dH_rel| > threshold`` (a saturation diagnostic).

    docs/science.md section 1: when confident answers saturate, most items pile up near
    +-2. NaN (degenerate) items are ignored.

    Args:
        values: ``items`` dH_rel values.
        threshold: The cut-off on ``|dH_rel|``.

    Returns:
        The share in [0, 1], or NaN when no finite value is given.
    """
    x = to_numpy(values).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(np.mean(np.abs(x) > threshold))
