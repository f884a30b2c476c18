"""Attention knockout: cut the answer position off from one span's keys at some layers.

See :mod:`modprobe.capture.interventions` for how the mask is replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from modprobe.capture.attention import (
    allowed_keys,
    gather_positions,
    kernel_mask,
    with_kernel_mask,
)
from modprobe.capture.candidates import Candidate, resolve_candidates
from modprobe.capture.intervention_common import (
    InterventionError,
    check_layers,
    clean_logits,
    encode_batch,
    logit_setup,
)
from modprobe.capture.trace import attention_call_name, check_attention_capture, chunk_sizes
from modprobe.spans import SPAN_NAMES, ModalitySpans


def span_keys(spans: ModalitySpans, span: str) -> torch.Tensor:
    """`batch seq` booleans: the keys of ``span``; refused when a row has none.

    Args:
        spans: The batch's spans.
        span: One of :data:`~modprobe.spans.SPAN_NAMES`.

    Returns:
        The span's token mask.

    Raises:
        InterventionError: an unknown span, or a row without its tokens.
    """
    if span not in SPAN_NAMES:
        raise InterventionError(f"unknown span {span!r}; choose one of {', '.join(SPAN_NAMES)}")
    keys = spans.mask(span)
    empty = [i for i in range(spans.batch_size) if not bool(keys[i].any())]
    if empty:
        raise InterventionError(
            f"span {span!r} has no tokens in row(s) {empty} of this batch; knock out a span "
            "the prompts have (rows without images have no image span)")
    return keys


def knockout_mask(
    mask: torch.Tensor | None,
    blocked: torch.Tensor,
    positions: torch.Tensor,
    seq_len: int,
    *,
    attention_mask: torch.Tensor | None = None,
    sliding_window: int | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The kernel's 4-D mask with each row's query position cut off from ``blocked`` keys.

    Args:
        mask: The mask the kernel got: `batch|1 1|head query key`, boolean (True =
            attend) or additive float; None for SDPA's causal fast path, in which case
            the causal (and window, chunk, padding) mask is built, boolean.
        blocked: `batch seq` keys to block for the query position (its own key is kept).
        positions: `batch` query position of each row.
        seq_len: Number of keys.
        attention_mask: `batch seq` padding mask, used only when ``mask`` is None.
        sliding_window: Sliding window of the layer, used only when ``mask`` is None.
        chunk_size: Attention chunk of the layer, used only when ``mask`` is None.

    Returns:
        `batch mask_head query key` mask of the same kind as ``mask`` (boolean when None).
    """
    batch = positions.shape[0]
    device = blocked.device
    if mask is None:
        queries = torch.arange(seq_len, device=device)
        rows = [allowed_keys(queries, seq_len, None if attention_mask is None
                             else attention_mask[b:b + 1].expand(seq_len, -1),
                             sliding_window, chunk_size) for b in range(batch)]
        mask = torch.stack(rows).unsqueeze(1)
    else:
        mask = mask.expand(batch, *mask.shape[1:]).clone()
    keys = torch.arange(seq_len, device=device)
    cut = blocked.to(device).clone()
    cut &= keys.view(1, -1) != positions.view(-1, 1).to(device)
    rows = torch.arange(batch, device=device)
    row_mask = mask[rows, :, positions.to(device)]  # batch mask_head key
    cut = cut.unsqueeze(1).expand(-1, row_mask.shape[1], -1)
    pad = row_mask.shape[-1] - seq_len
    if pad:
        cut = torch.cat([cut, cut.new_zeros(*cut.shape[:2], pad)], dim=-1)
    if row_mask.dtype == torch.bool:
        row_mask = row_mask & ~cut
    else:
        row_mask = row_mask.masked_fill(cut, torch.finfo(row_mask.dtype).min)
    mask[rows, :, positions.to(device)] = row_mask
    return mask


def knockout_trace(
    loaded: Any,
    inputs: Mapping[str, Any],
    positions: torch.Tensor,
    blocked: torch.Tensor,
    layers: Sequence[int],
) -> torch.Tensor:
    """`batch vocab` logits at ``positions`` with ``blocked`` keys cut off at ``layers``.

    One nnsight trace; the model runs its own kernel with the replaced mask.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        inputs: An encoded batch.
        positions: `batch` query position of each row (the answer positions).
        blocked: `batch seq` keys the query position may no longer attend.
        layers: The decoder layers where they are blocked.

    Returns:
        The logits under the knockout, one row per batch row.
    """
    model, adapter = loaded.model, loaded.adapter
    check_attention_capture(loaded)
    chunks = chunk_sizes(loaded)
    attention_mask = inputs.get("attention_mask")
    kwargs, logit_positions = logit_setup(loaded, inputs, positions)
    positions = positions.to(loaded.device)
    envoys = {i: adapter.attention_module(model, i) for i in layers}
    calls = {i: attention_call_name(e) for i, e in envoys.items()}
    with model.trace(**kwargs):
        for i in layers:
            op = getattr(envoys[i].source, calls[i])
            args, call_kwargs = op.inputs
            mask, window = kernel_mask(args, call_kwargs, envoys[i]._module)
            new_mask = knockout_mask(mask, blocked.to(args[1].device), positions.to(args[1].device),
                                     args[2].shape[2], attention_mask=attention_mask,
                                     sliding_window=window, chunk_size=chunks[i])
            op.inputs = with_kernel_mask(args, call_kwargs, new_mask)
        final = gather_positions(model.output.logits, logit_positions, dim=1).save()
    return final


@dataclass
class KnockoutResult:
    """Logits at the answer position with and without a knockout.

    Attributes:
        span: The span knocked out.
        layers: The decoder layers where it was knocked out.
        candidate_labels: The candidates' labels.
        clean_logits: `batch vocab` the model's own logits.
        knocked_logits: `batch vocab` logits under the knockout.
        clean_candidate_logits: `batch cand`.
        knocked_candidate_logits: `batch cand`.
    """

    span: str
    layers: list[int]
    candidate_labels: list[str]
    clean_logits: torch.Tensor
    knocked_logits: torch.Tensor
    clean_candidate_logits: torch.Tensor
    knocked_candidate_logits: torch.Tensor

    @property
    def flipped(self) -> torch.Tensor:
        """`batch` booleans: the top candidate changed under the knockout."""
        return (self.clean_candidate_logits.argmax(-1)
                != self.knocked_candidate_logits.argmax(-1))


def knockout(
    loaded: Any,
    prompts_or_batch: Any,
    *,
    span: str,
    layers: Iterable[int],
    candidates: Sequence[Candidate] | None = None,
    clean: torch.Tensor | None = None,
) -> KnockoutResult:
    """Block the answer position's attention to ``span`` at ``layers``; read the logits.

    Args:
        loaded: A :class:`modprobe.LoadedModel` (SDPA or eager).
        prompts_or_batch: Prompts or an encoded batch (``loaded.encode``).
        span: One of :data:`modprobe.spans.SPAN_NAMES`; every row must have it.
        layers: Decoder layers (one, or a window) where the attention is blocked.
        candidates: Candidate answers (see :func:`modprobe.capture.capture`).
        clean: The batch's clean `batch vocab` logits when already computed (a sweep).

    Returns:
        The :class:`KnockoutResult`.

    Raises:
        InterventionError: an unknown span, a span a row lacks, a layer out of range.
    """
    batch = encode_batch(loaded, prompts_or_batch)
    spans = loaded.spans(batch)
    n_layers = loaded.adapter.num_layers(loaded.module)
    chosen = check_layers(layers, n_layers)
    blocked = span_keys(spans, span)
    positions = spans.answer_positions()
    unembed = loaded.adapter.lm_head(loaded.module)
    cands = resolve_candidates(candidates, loaded.tokenizer, int(unembed.weight.shape[0]))
    with torch.no_grad():
        base = clean if clean is not None else clean_logits(loaded, batch, positions)
        knocked = knockout_trace(loaded, batch, positions, blocked, chosen)
    ids = torch.as_tensor(cands.ids, dtype=torch.long, device=base.device)
    return KnockoutResult(
        span=span, layers=chosen, candidate_labels=list(cands.labels),
        clean_logits=base.float(), knocked_logits=knocked.float(),
        clean_candidate_logits=base[:, ids].float(), knocked_candidate_logits=knocked[:, ids].float())
