"""Answer-position attention rows, recomputed from post-rotary queries and keys.

Pure torch, no nnsight: the trace hands these functions the exact tensors a decoder
layer passes to its attention kernel (``attention_interface(self, query, key, value,
mask, scaling=...)``), and they rebuild only the rows the capture needs,

    probs[b, h, :] = softmax(q[b, h, pos_b] . K[b, kv(h)]^T * scaling + mask[b, pos_b])

so the model itself keeps running SDPA and nothing of size ``seq x seq`` is ever built.
The rows are reduced at once to the mass each modality span receives
(:func:`attention_rows_to_mass`). Everything here is differentiable.
"""

from __future__ import annotations

from typing import Any

import torch

from modprobe.spans import ModalitySpans


def gather_positions(x: torch.Tensor, positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Pick one index of ``dim`` per batch row (``x[b, ..., positions[b], ...]``).

    Args:
        x: Tensor whose first axis is ``batch``.
        positions: `batch` int64 index into ``dim``.
        dim: The axis to index (>= 1).

    Returns:
        ``x`` without axis ``dim``.
    """
    rows = torch.arange(x.shape[0], device=x.device)
    return x.movedim(dim, 1)[rows, positions.to(x.device)]


def kernel_mask(args: tuple, kwargs: dict[str, Any], module: Any
                ) -> tuple[torch.Tensor | None, int | None]:
    """The mask and sliding window of one ``attention_interface`` call.

    The kernel is called as ``attention_interface(self, query, key, value, mask, ...)``:
    the mask is the fifth positional argument or the ``attention_mask`` keyword; the
    window is the call's ``sliding_window`` keyword, else the module's attribute.

    Args:
        args: The call's positional arguments (as nnsight's ``.inputs`` gives them).
        kwargs: Its keyword arguments.
        module: The attention module that made the call.

    Returns:
        ``(mask, sliding_window)``; either is None when the call had none.
    """
    mask = args[4] if len(args) > 4 else kwargs.get("attention_mask")
    window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))
    return mask, window


def with_kernel_mask(args: tuple, kwargs: dict[str, Any],
                     mask: torch.Tensor) -> tuple[tuple, dict[str, Any]]:
    """The arguments of an ``attention_interface`` call with ``mask`` as its mask.

    Args:
        args: The call's positional arguments.
        kwargs: Its keyword arguments.
        mask: The mask to pass instead (where :func:`kernel_mask` read it).

    Returns:
        ``(args, kwargs)`` to set as the call's inputs.
    """
    if len(args) > 4:
        return (*args[:4], mask, *args[5:]), kwargs
    return args, {**kwargs, "attention_mask": mask}


def allowed_keys(
    positions: torch.Tensor,
    seq_len: int,
    attention_mask: torch.Tensor | None = None,
    sliding_window: int | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """`batch seq` booleans: which keys each row's query position may attend to.

    The rebuild used when the model passed no mask to its attention kernel (SDPA's causal
    fast path). It follows transformers' masking rules: causal (key <= query), no padding
    keys, and for a sliding-window layer only the last ``sliding_window`` keys
    (``key > query - sliding_window``), for a chunked layer (Llama 4) only the keys of
    the query's chunk (``key // chunk_size == query // chunk_size``; without padding,
    which is when SDPA gets no mask, token index and position agree).

    Args:
        positions: `batch` query index of each row.
        seq_len: Number of keys.
        attention_mask: `batch seq`, 1 for real tokens, 0 for padding (None: no padding).
        sliding_window: Window size of the layer, or None for full attention.
        chunk_size: Attention chunk of the layer, or None for unchunked attention.
    """
    keys = torch.arange(seq_len, device=positions.device)
    pos = positions.view(-1, 1)
    allowed = keys.view(1, -1) <= pos
    if sliding_window is not None:
        allowed &= keys.view(1, -1) > pos - sliding_window
    if chunk_size is not None:
        allowed &= keys.view(1, -1) // chunk_size == pos // chunk_size
    if attention_mask is not None:
        allowed &= attention_mask.to(positions.device).bool()
    return allowed


def mask_rows(mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The answer-position rows of a 4-D attention mask.

    Args:
        mask: `batch mask_head query key` (``mask_head`` is 1 or ``head``; ``batch`` may
            be 1 and broadcast), boolean (True = attend) or additive float.
        positions: `batch` query index of each row.

    Returns:
        `batch mask_head key`, same dtype as ``mask``.
    """
    batch = positions.shape[0]
    if mask.shape[0] == 1 and batch > 1:
        mask = mask.expand(batch, *mask.shape[1:])
    return gather_positions(mask, positions, dim=2)


def answer_attention_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    positions: torch.Tensor,
    scaling: float,
    mask: torch.Tensor | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    sliding_window: int | None = None,
    chunk_size: int | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Attention probabilities of each row's query position over all keys.

    Handles grouped-query attention without repeating keys: head ``h`` reads key head
    ``h // (head / kv_head)``, exactly as transformers' ``repeat_kv`` lays them out.

    Args:
        query: `batch head seq dim`, post-rotary (as passed to the attention kernel).
        key: `batch kv_head seq dim`, post-rotary.
        positions: `batch` query index of each row (the answer position).
        scaling: The attention module's ``scaling`` (usually ``head_dim ** -0.5``).
        mask: The mask passed to the kernel, `batch 1 seq seq` boolean (True = attend)
            or additive float; None when the kernel ran causal without a mask, in which
            case the mask is rebuilt from ``attention_mask`` and ``sliding_window``.
        attention_mask: `batch seq` padding mask, used only when ``mask`` is None.
        sliding_window: Sliding window of the layer, used only when ``mask`` is None.
        chunk_size: Attention chunk of the layer, used only when ``mask`` is None.
        softcap: Attention-logit soft cap (Gemma 2): scores become
            ``softcap * tanh(scores / softcap)`` before the mask, as in eager attention.

    Returns:
        `batch head seq` float32 masked scores (the attention logits; keys a row may not
        attend hold the dtype's minimum): their softmax is the attention row.
    """
    batch, heads, _, dim = query.shape
    kv_heads, seq = key.shape[1], key.shape[2]
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads cannot share {kv_heads} key heads evenly")
    group = heads // kv_heads
    # Softmax in float32: a bf16 model's attention kernel also accumulates in float32.
    q = gather_positions(query, positions, dim=2).float().view(batch, kv_heads, group, dim)
    scores = torch.einsum("bkgd,bksd->bkgs", q, key.float()).reshape(batch, heads, seq) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if mask is None:
        keep = allowed_keys(positions, seq, attention_mask, sliding_window,
                            chunk_size).unsqueeze(1)
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    else:
        rows = mask_rows(mask, positions)[..., :seq]
        if rows.dtype == torch.bool:
            scores = scores.masked_fill(~rows, torch.finfo(scores.dtype).min)
        else:
            scores = scores + rows.float()
    return scores


def answer_attention_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    positions: torch.Tensor,
    scaling: float,
    mask: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    """Attention probabilities of each row's query position over all keys.

    The softmax of :func:`answer_attention_scores` (same arguments and options).

    Returns:
        `batch head seq` float32 probabilities (each row sums to 1).

    Args:
        query: `batch head seq dim`, post-rotary.
        key: `batch kv_head seq dim`, post-rotary.
        positions: `batch` query index of each row.
        scaling: The attention module's ``scaling``.
        mask: The mask passed to the kernel (None: rebuilt causal).
        **options: ``attention_mask``, ``sliding_window``, ``chunk_size``, ``softcap``.
    """
    return torch.softmax(
        answer_attention_scores(query, key, positions, scaling, mask, **options), dim=-1)


def attention_scores_to_log_mass(
    scores: torch.Tensor, spans: ModalitySpans | torch.Tensor
) -> torch.Tensor:
    """Log of the attention mass each span receives, computed in log space from the scores.

    ``log m_s = logsumexp_{k in s} z_k - logsumexp_k z_k`` for the masked scores ``z`` of
    :func:`answer_attention_scores`. Unlike ``log`` of :func:`attention_rows_to_mass`, it
    stays finite and exact when a span's mass underflows float32, and its gradient
    (``d log m_s / d z_k = 1[k in s] softmax_s(z)_k - softmax(z)_k``) is bounded by 1, so a
    head that gives a span almost nothing is still pushed toward it
    (docs/finetune_losses.md). A span without tokens in a row gets the dtype's minimum
    (mass 0), not ``-inf``, so sums and gradients stay finite.

    Args:
        scores: `batch ... seq` masked attention scores.
        spans: The batch's :class:`~modprobe.spans.ModalitySpans`, or its `batch seq span`
            one-hot.

    Returns:
        `batch ... span` float32 log-masses in :data:`modprobe.spans.SPAN_NAMES` order.
    """
    inside = span_one_hot(spans, torch.float32).to(scores.device).bool()
    flat = scores.float().reshape(scores.shape[0], -1, scores.shape[-1])  # b n k
    lowest = torch.finfo(torch.float32).min
    # b n k s: each span's keys keep their score, the others the lowest float
    per_span = flat.unsqueeze(-1).masked_fill(~inside.unsqueeze(1), lowest)
    log_mass = per_span.logsumexp(dim=2) - flat.logsumexp(dim=-1, keepdim=True)
    empty = ~inside.any(dim=1).unsqueeze(1)  # b 1 s: spans without a token in the row
    log_mass = log_mass.masked_fill(empty, lowest)
    return log_mass.reshape(*scores.shape[:-1], inside.shape[-1])


def span_one_hot(
    spans: ModalitySpans | torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """`batch seq span` indicator from spans (or pass an indicator through).

    Args:
        spans: The batch's :class:`~modprobe.spans.ModalitySpans`, or an indicator.
        dtype: The indicator's dtype.

    Returns:
        `batch seq span` in :data:`~modprobe.spans.SPAN_NAMES` order.
    """
    if isinstance(spans, ModalitySpans):
        return spans.one_hot(dtype)
    return spans.to(dtype)


def attention_rows_to_mass(
    probs: torch.Tensor, spans: ModalitySpans | torch.Tensor
) -> torch.Tensor:
    """Reduce attention rows to the mass each modality span receives.

    Args:
        probs: `batch ... seq` attention probabilities (e.g. `batch head seq`, or
            `batch head query seq` rows of eager ``output_attentions`` picked at the answer
            position).
        spans: The batch's :class:`~modprobe.spans.ModalitySpans`, or its `batch seq span`
            one-hot (padding rows all zero).

    Returns:
        `batch ... span` in :data:`modprobe.spans.SPAN_NAMES` order; sums to 1 over
        ``span`` when no probability sits on padding.
    """
    one_hot = span_one_hot(spans, probs.dtype).to(probs.device)
    flat = probs.reshape(probs.shape[0], -1, probs.shape[-1])
    mass = torch.einsum("bns,bsc->bnc", flat, one_hot)
    return mass.reshape(*probs.shape[:-1], one_hot.shape[-1])
