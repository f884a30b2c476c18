"""The fine-tuning losses, as plain functions of tensors with their formulas written out.

* :func:`attention_calibration_loss` (modprobe's own; docs/science.md "The attention-calibration
  loss"): on the `batch layer head span` attention mass of a grad capture
  (``capture(..., grad=True).attention_mass``), pull the answer position's attention toward
  the span the task says is relevant.
* :func:`consistency_loss` (arXiv 2505.19616, section 4.2): the divergence between the
  answer distributions of a clean prompt and its perturbed counterpart.

Both return a scalar that is a mean over the batch (and over the chosen layers and heads),
so its size does not depend on how many rows or heads there are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from modprobe.spans import SPAN_NAMES

#: Calibration loss kinds (see :func:`attention_calibration_loss`).
CALIBRATION_KINDS: tuple[str, ...] = ("cross_entropy", "neg_log_mass", "margin")
#: Consistency loss kinds (see :func:`consistency_loss`).
CONSISTENCY_KINDS: tuple[str, ...] = ("js", "kl")
#: Spans carrying a modality's content. ``"text"`` (chat template, question, BOS: where
#: most attention sinks) is left out of the default renormalisation unless a target names it.
CONTENT_SPANS: tuple[str, ...] = tuple(s for s in ("image", "video", "audio", "context")
                                       if s in SPAN_NAMES)
#: Floor of the masses' logs when only masses are given (no ``log_mass``): the smallest
#: normal float32. Below it the log has no gradient; pass the capture's log-masses.
_TINY = torch.finfo(torch.float32).tiny

SpanTarget = str | Sequence[str] | torch.Tensor


def span_index(name: str) -> int:
    """Position of a span on the ``span`` axis (``SPAN_NAMES.index``), with a clear error."""
    if name not in SPAN_NAMES:
        raise ValueError(f"unknown span {name!r}; the spans are {', '.join(SPAN_NAMES)}")
    return SPAN_NAMES.index(name)


def target_distribution(target: SpanTarget, batch: int, *, device: torch.device | None = None
                        ) -> torch.Tensor:
    """`batch span` target distribution from span names or a given distribution.

    Args:
        target: One span name for every row, one name per row, or a `batch span` (or
            `span`) tensor of non-negative weights summing to 1 per row, in
            :data:`~modprobe.spans.SPAN_NAMES` order.
        batch: Number of rows.
        device: Where the result goes.

    Raises:
        ValueError: unknown span name, wrong number of rows or spans, weights that are
            negative or do not sum to 1.
    """
    n_spans = len(SPAN_NAMES)
    if isinstance(target, torch.Tensor):
        dist = target.detach().to(device=device, dtype=torch.float32)
        if dist.dim() == 1:
            dist = dist.expand(batch, -1)
        if dist.shape != (batch, n_spans):
            raise ValueError(f"target distribution has shape {tuple(target.shape)}; expected "
                             f"({batch}, {n_spans}) over the spans {', '.join(SPAN_NAMES)}")
        if bool((dist < 0).any()) or not torch.allclose(dist.sum(-1), torch.ones(batch, device=dist.device), atol=1e-4):
            raise ValueError("target distribution rows must be non-negative and sum to 1")
        return dist
    names = [target] * batch if isinstance(target, str) else list(target)
    if len(names) != batch:
        raise ValueError(f"target names {len(names)} span(s) for a batch of {batch} rows")
    index = torch.tensor([span_index(n) for n in names], device=device)
    return F.one_hot(index, n_spans).float()


def _select(mass: torch.Tensor, layers: Sequence[int] | None, heads: Sequence[int] | None
            ) -> torch.Tensor:
    """`batch layer' head' span` subset, with range checks naming the option."""
    for axis, chosen, label in ((1, layers, "layers"), (2, heads, "heads")):
        if chosen is None:
            continue
        size = mass.shape[axis]
        chosen = [int(i) for i in chosen]
        bad = [i for i in chosen if not -size <= i < size]
        if not chosen or bad:
            raise ValueError(f"{label} {chosen} out of range: the attention mass has {size} "
                             f"{label} (0..{size - 1})")
        mass = mass.index_select(axis, torch.tensor(chosen, device=mass.device) % size)
    return mass


def attention_calibration_loss(
    attention_mass: torch.Tensor | None,
    target: SpanTarget,
    *,
    log_mass: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    kind: str = "cross_entropy",
    over: Sequence[str] | None = None,
    margin: float = 0.2,
    weight: float = 1.0,
) -> torch.Tensor:
    """Pull the answer position's attention toward the relevant span.

    Notation, per row ``b``, chosen layer ``l`` and head ``h``: ``m_s`` is the attention
    mass the answer position gives span ``s`` (``attention_mass[b, l, h, s]``; it sums to 1
    over all spans), ``l_s = log m_s``, ``t`` the row's target distribution over spans
    (one-hot on the relevant span when a name is given), ``O`` the spans of ``over`` and
    ``log p_s = l_s - logsumexp_{s' in O} l_{s'}`` the log of the mass renormalised over ``O``.

    * ``"cross_entropy"``: ``-sum_{s in O} t_s log p_s``. With the default ``O`` (the
      content spans: image, video, audio, context, plus any span the target names) it
      moves the *share* of attention between modalities, leaving alone what the template
      and BOS tokens ("text") absorb.
    * ``"neg_log_mass"``: ``-sum_s t_s l_s`` on the raw mass: it raises the absolute
      attention on the relevant span, taking it from every other token, template
      included. (For a one-hot target: ``-log m_r``.)
    * ``"margin"``: ``max(0, margin - (p_r - max_{s in O, s != r} p_s))``: zero once the
      relevant span leads every other span of ``O`` by ``margin`` (needs a span name per
      row, not a distribution).

    Everything is computed from log-masses, so a head that gives the relevant span
    almost nothing (``m_r = 1e-30``) contributes its true ``-log p_r`` (69 nats) and,
    through the capture's ``attention_log_mass``, a gradient of size about 1 toward the
    span (docs/finetune_losses.md derives it). A row whose only span of ``O`` is the
    relevant one has ``log p_r = 0`` and loss 0. The loss is ``weight`` times the mean over
    rows, chosen layers and chosen heads.

    Args:
        attention_mass: `batch layer head span` mass (used when ``log_mass`` is None; its
            log is then floored at the smallest normal float, with no gradient below it).
        target: Per row the relevant span name (``"image"``, ``"context"``...), one name
            for all rows, or a `batch span` target distribution (SPAN_NAMES order).
        log_mass: `batch layer head span` log-masses computed from the attention scores
            (``capture(..., grad=True).attention_log_mass``): what training should pass.
        layers: Decoder layers to calibrate (default all); negative indices count back.
        heads: Heads to calibrate in each chosen layer (default all).
        kind: ``"cross_entropy"``, ``"neg_log_mass"`` or ``"margin"``.
        over: Spans the mass is renormalised over for ``cross_entropy`` and ``margin``.
        margin: The margin of ``kind="margin"`` (in renormalised probability).
        weight: Multiplies the loss.

    Returns:
        A scalar tensor (differentiable through ``log_mass`` or ``attention_mass``).

    Raises:
        ValueError: unknown kind or span, layers or heads out of range, a target weight
            outside ``over``, a distribution target with ``kind="margin"``.
    """
    if kind not in CALIBRATION_KINDS:
        raise ValueError(f"unknown calibration kind {kind!r}; use one of {', '.join(CALIBRATION_KINDS)}")
    log_mass = _checked_log_mass(attention_mass, log_mass)
    dist = target_distribution(target, log_mass.shape[0], device=log_mass.device)
    logs = _select(log_mass, layers, heads)
    weights = dist[:, None, None, :]
    if kind == "neg_log_mass":
        return weight * _weighted_sum(-logs, weights).mean()
    log_share, keep = _renormalised(logs, dist, over)
    if kind == "cross_entropy":
        return weight * _weighted_sum(-log_share, weights).mean()
    if isinstance(target, torch.Tensor) and bool((dist.max(-1).values < 1).any()):
        raise ValueError("kind='margin' needs one relevant span per row, not a distribution")
    return weight * _margin_shortfall(log_share, keep, dist, margin).mean()


def _checked_log_mass(attention_mass: torch.Tensor | None,
                      log_mass: torch.Tensor | None) -> torch.Tensor:
    """The float32 `batch layer head span` log-masses.

    ``log_mass`` when given, else the floored log of ``attention_mass``; a ``ValueError``
    for any other shape.
    """
    given = log_mass if log_mass is not None else attention_mass
    if given is None or given.dim() != 4 or given.shape[-1] != len(SPAN_NAMES):
        shape = None if given is None else tuple(given.shape)
        raise ValueError(f"attention_mass (or log_mass) must be `batch layer head span` with "
                         f"{len(SPAN_NAMES)} spans, got shape {shape}")
    if log_mass is None:
        return given.float().clamp_min(_TINY).log()
    return log_mass.float()


def _renormalised(logs: torch.Tensor, dist: torch.Tensor, over: Sequence[str] | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p_s``, the log of the mass renormalised over the spans ``O``, and ``O``'s mask.

    ``O`` is ``over``, by default the content spans plus every span the target names;
    a target weight outside ``over`` is a ``ValueError``.
    """
    named = sorted({i for i in torch.nonzero(dist.sum(0) > 0).flatten().tolist()})
    chosen = [span_index(s) for s in over] if over is not None else sorted(
        {span_index(s) for s in CONTENT_SPANS} | set(named))
    outside = [SPAN_NAMES[i] for i in named if i not in chosen]
    if outside:
        raise ValueError(f"the target puts weight on {outside}, which over={list(over or ())} "
                         "leaves out; add them to over")
    keep = torch.zeros(len(SPAN_NAMES), dtype=torch.bool, device=logs.device)
    keep[chosen] = True
    # log p_s = l_s - logsumexp over O: spans outside O get the lowest float (share 0).
    kept = logs.masked_fill(~keep, torch.finfo(torch.float32).min)
    return kept - kept.logsumexp(-1, keepdim=True), keep


def _margin_shortfall(log_share: torch.Tensor, keep: torch.Tensor, dist: torch.Tensor,
                      margin: float) -> torch.Tensor:
    """``max(0, margin - (p_r - max_{s in O, s != r} p_s))`` per row, layer and head."""
    share = log_share.exp()
    onehot = dist.bool()[:, None, None, :]
    lead = (share * dist[:, None, None, :]).sum(-1)
    # the strongest competitor in `over` (0 when the relevant span is alone in it)
    others = share.masked_fill(onehot | ~keep, -math.inf).max(-1).values
    others = torch.where(torch.isfinite(others), others, torch.zeros_like(others))
    return torch.relu(margin - (lead - others))


def _weighted_sum(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_s w_s v_s`` over the last axis, with terms of weight 0 left out.

    A span without tokens has a log-mass of the lowest float: 0 times it must stay 0.
    """
    return torch.where(weights > 0, values * weights, torch.zeros_like(values)).sum(-1)


def _log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # at least float32 (bf16 logits lose the small differences a divergence is made of)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return F.log_softmax(logits.to(dtype) / temperature, dim=-1)


def consistency_loss(
    clean_logits: torch.Tensor,
    perturbed_logits: torch.Tensor,
    *,
    kind: str = "js",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Divergence between clean and perturbed answer distributions, batch mean, in nats.

    ``P = softmax(clean_logits / T)`` and ``Q = softmax(perturbed_logits / T)`` row by row,
    where the logits are those that *predict* the answer token (at the last prompt
    position, not at the answer token itself).

    * ``"js"``: the textbook Jensen-Shannon divergence
      ``JS(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M)`` with ``M = (P + Q) / 2``; symmetric,
      between 0 and ``ln 2``; gradients flow into both sides.
    * ``"kl"``: ``KL(P || Q) = sum_v P_v (log P_v - log Q_v)``: the clean distribution is
      the target and carries no gradient (``P`` is detached); only the perturbed side is
      pulled toward it.

    No ``T**2`` factor is applied (the value stays a divergence in nats); fold any such
    scaling into the loss weight.

    Args:
        clean_logits: `batch vocab`.
        perturbed_logits: `batch vocab`, row ``b`` the perturbed counterpart of clean row ``b``.
        kind: ``"js"`` or ``"kl"``.
        temperature: ``T`` > 0.

    Returns:
        A scalar: the mean over rows of the per-row divergence.
    """
    if kind not in CONSISTENCY_KINDS:
        raise ValueError(f"unknown consistency kind {kind!r}; use one of {', '.join(CONSISTENCY_KINDS)}")
    if clean_logits.shape != perturbed_logits.shape or clean_logits.dim() != 2:
        raise ValueError(f"clean and perturbed logits must both be `batch vocab` and match, got "
                         f"{tuple(clean_logits.shape)} and {tuple(perturbed_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_p = _log_probs(clean_logits, temperature)
    log_q = _log_probs(perturbed_logits, temperature)
    if kind == "kl":
        log_p = log_p.detach()
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).mean()
