"""Causal interventions on the capture's hooks: attention knockout and activation patching.

**Attention knockout** blocks the query (answer) position's attention to the keys of one
span (image, video, audio, context, text) at one decoder layer or a window of layers.
The model keeps running its own kernel (SDPA): the trace replaces the mask argument of
the same ``attention_interface(self, query, key, value, mask, ...)`` call the capture
reads (:mod:`.trace`) with a 4-D mask that equals the one the kernel would have used,
except that the answer row no longer reaches the span. Where the kernel got no mask
(SDPA's causal fast path) the causal mask is built the way transformers builds it. The
query position always keeps its own key, so a row is never left with nothing to attend
to (knocking out ``text`` removes every other text token).

**Activation patching** overwrites a decoder layer's output (the residual stream) at
some positions of a *target* run with the same layer's output at the corresponding
positions of a *source* run (:func:`corresponding_positions`: every real token, the
tokens of one span in order, or the answer position), then reads the target's logits.

```python
from modprobe.capture.interventions import knockout, patch
out = knockout(lm, batch, span="image", layers=[3], candidates=["red", "blue"])
out.knocked_candidate_logits - out.clean_candidate_logits      # batch cand
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from modprobe.capture.attention import allowed_keys, gather_positions
from modprobe.capture.candidates import Candidate, resolve_candidates
from modprobe.capture.trace import (
    _last_logits_only,
    attention_call_name,
    check_attention_capture,
    chunk_sizes,
    forward_kwargs,
)
from modprobe.errors import ModprobeError
from modprobe.spans import SPAN_NAMES, ModalitySpans

PATCH_SITES = ("all", "answer", *SPAN_NAMES)


class InterventionError(ModprobeError, ValueError):
    """A knockout or patch that cannot be made (a missing span, a layer out of range)."""


def check_layers(layers: Iterable[int], n_layers: int) -> list[int]:
    """Sorted, distinct decoder layers, refused when one is out of range."""
    out = sorted({int(i) for i in layers})
    bad = [i for i in out if i < 0 or i >= n_layers]
    if not out or bad:
        raise InterventionError(
            f"layers {bad or '[]'} out of range: this model has {n_layers} decoder layers; "
            f"choose layers in 0..{n_layers - 1}")
    return out


def span_keys(spans: ModalitySpans, span: str) -> torch.Tensor:
    """`batch seq` booleans: the keys of ``span``; refused when a row has none."""
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


def _replace_mask(args: tuple, kwargs: dict, new_mask: torch.Tensor) -> tuple[tuple, dict]:
    """The kernel call's arguments with ``new_mask`` as its mask (5th positional or kwarg)."""
    if len(args) > 4:
        return (*args[:4], new_mask, *args[5:]), kwargs
    return args, {**kwargs, "attention_mask": new_mask}


def _layer_output(envoy: Any) -> Any:
    out = envoy.output
    # transformers 5 decoder layers return a tensor; older ones a tuple.
    return out[0] if isinstance(out, tuple) else out


def _logit_setup(loaded: Any, inputs: Mapping[str, Any],
                 positions: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
    """Forward kwargs and where to read the logits: as the capture does, only the last
    position's logits are computed when every query position is the last one."""
    kwargs = forward_kwargs(loaded, dict(inputs))
    positions = positions.to(loaded.device)
    if _last_logits_only(loaded.module, kwargs, positions):
        kwargs["logits_to_keep"] = 1
        return kwargs, torch.zeros_like(positions)
    return kwargs, positions


def knockout_trace(
    loaded: Any,
    inputs: Mapping[str, Any],
    positions: torch.Tensor,
    blocked: torch.Tensor,
    layers: Sequence[int],
) -> torch.Tensor:
    """`batch vocab` logits at ``positions`` with ``blocked`` keys cut off at ``layers``.

    One nnsight trace; the model runs its own kernel with the replaced mask.
    """
    model, adapter = loaded.model, loaded.adapter
    check_attention_capture(loaded)
    chunks = chunk_sizes(loaded)
    attention_mask = inputs.get("attention_mask")
    kwargs, logit_positions = _logit_setup(loaded, inputs, positions)
    positions = positions.to(loaded.device)
    envoys = {i: adapter.attention_module(model, i) for i in layers}
    calls = {i: attention_call_name(e) for i, e in envoys.items()}
    with model.trace(**kwargs):
        for i in layers:
            op = getattr(envoys[i].source, calls[i])
            args, call_kwargs = op.inputs
            mask = args[4] if len(args) > 4 else call_kwargs.get("attention_mask")
            module = envoys[i]._module
            window = call_kwargs.get("sliding_window", getattr(module, "sliding_window", None))
            new_mask = knockout_mask(mask, blocked.to(args[1].device), positions.to(args[1].device),
                                     args[2].shape[2], attention_mask=attention_mask,
                                     sliding_window=window, chunk_size=chunks[i])
            op.inputs = _replace_mask(args, call_kwargs, new_mask)
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


def _encode(loaded: Any, prompts_or_batch: Any) -> dict[str, Any]:
    if isinstance(prompts_or_batch, Mapping):
        return dict(prompts_or_batch)
    return loaded.encode(list(prompts_or_batch))


def clean_logits(loaded: Any, batch: Mapping[str, Any], positions: torch.Tensor) -> torch.Tensor:
    """`batch vocab` the model's own logits at ``positions`` (no intervention)."""
    model = loaded.model
    kwargs, logit_positions = _logit_setup(loaded, batch, positions)
    with torch.no_grad(), model.trace(**kwargs):
        final = gather_positions(model.output.logits, logit_positions, dim=1).save()
    return final


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
    batch = _encode(loaded, prompts_or_batch)
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


# ---------------------------------------------------------------- activation patching


def _real_positions(spans: ModalitySpans, row: int, site: str) -> torch.Tensor:
    codes = spans.codes[row]
    if site == "all":
        return torch.nonzero(codes >= 0).flatten()
    return torch.nonzero(spans.mask(site)[row]).flatten()


def corresponding_positions(
    target: ModalitySpans, source: ModalitySpans, site: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the target run's positions have a counterpart in the source run.

    ``all``: every real token, in order (the two rows must have the same layout of spans,
    whatever their padding); ``answer``: the answer positions; a span name: the span's
    tokens in order (equal counts).

    Returns:
        ``(rows, target_positions, source_positions)`` flat int64 tensors.

    Raises:
        InterventionError: the site is unknown, the batches differ in size, or a row's
            positions do not correspond.
    """
    if site not in PATCH_SITES:
        raise InterventionError(f"unknown patch site {site!r}; choose one of {', '.join(PATCH_SITES)}")
    if target.batch_size != source.batch_size:
        raise InterventionError(f"the source batch has {source.batch_size} rows and the target "
                                f"{target.batch_size}; patch row by row pairs of equal batches")
    if site == "answer":
        rows = torch.arange(target.batch_size)
        return rows, target.answer_positions().cpu(), source.answer_positions().cpu()
    out_rows, out_t, out_s = [], [], []
    for row in range(target.batch_size):
        t = _real_positions(target, row, site).cpu()
        s = _real_positions(source, row, site).cpu()
        same = t.numel() == s.numel() and (site != "all" or torch.equal(
            target.codes[row, t].cpu(), source.codes[row, s].cpu()))
        if not same or t.numel() == 0:
            raise InterventionError(
                f"row {row}: the target's {site!r} positions ({t.numel()}) have no counterpart in "
                f"the source ({s.numel()}, or a different span layout); patch a site both runs "
                "share token for token (the answer position always corresponds)")
        out_rows.append(torch.full_like(t, row))
        out_t.append(t)
        out_s.append(s)
    return torch.cat(out_rows), torch.cat(out_t), torch.cat(out_s)


def residual_stream(loaded: Any, batch: Mapping[str, Any], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """`batch seq hidden` output of each of ``layers`` (one trace, no intervention)."""
    model = loaded.model
    envoys = loaded.adapter.decoder_layers(model)
    saved: dict[int, Any] = {}
    # no logits are read: only the last position's are computed where the forward allows
    kwargs, _ = _logit_setup(loaded, batch, loaded.spans(batch).answer_positions())
    with torch.no_grad(), model.trace(**kwargs):
        for i in layers:
            saved[i] = _layer_output(envoys[i]).save()
    return {i: v for i, v in saved.items()}


def patch_trace(
    loaded: Any,
    batch: Mapping[str, Any],
    positions: torch.Tensor,
    layer: int,
    where: tuple[torch.Tensor, torch.Tensor],
    values: torch.Tensor,
) -> torch.Tensor:
    """`batch vocab` logits at ``positions`` with layer ``layer``'s output overwritten.

    Args:
        where: ``(rows, seq_positions)`` of the target to overwrite.
        values: `n hidden` the new residual stream at those positions.
    """
    model = loaded.model
    envoy = loaded.adapter.decoder_layers(model)[layer]
    rows, cols = where
    kwargs, logit_positions = _logit_setup(loaded, batch, positions)
    with torch.no_grad(), model.trace(**kwargs):
        out = _layer_output(envoy)
        out[rows.to(out.device), cols.to(out.device)] = values.to(out.device, out.dtype)
        final = gather_positions(model.output.logits, logit_positions, dim=1).save()
    return final


def patch(
    loaded: Any,
    target: Any,
    source: Any,
    *,
    layers: Iterable[int],
    site: str = "answer",
) -> dict[int, torch.Tensor]:
    """Patch ``site`` of the target run with the source run's residual stream, per layer.

    Args:
        loaded: A :class:`modprobe.LoadedModel`.
        target: Prompts or an encoded batch: the run patched (e.g. the multimodal one).
        source: Prompts or an encoded batch, row for row with ``target`` (e.g. the
            vision-only or text-only runs).
        layers: Decoder layers to patch, one at a time.
        site: ``"all"``, ``"answer"`` or a span name (:func:`corresponding_positions`).

    Returns:
        ``{layer: `batch vocab` target logits at its answer positions, patched at layer}``.
    """
    target_batch, source_batch = _encode(loaded, target), _encode(loaded, source)
    chosen = check_layers(layers, loaded.adapter.num_layers(loaded.module))
    t_spans, s_spans = loaded.spans(target_batch), loaded.spans(source_batch)
    rows, t_pos, s_pos = corresponding_positions(t_spans, s_spans, site)
    stream = residual_stream(loaded, source_batch, chosen)
    answer = t_spans.answer_positions()
    out = {}
    for layer in chosen:
        values = stream[layer][rows.to(stream[layer].device), s_pos.to(stream[layer].device)]
        out[layer] = patch_trace(loaded, target_batch, answer, layer, (rows, t_pos), values).float()
    return out


def restored_share(
    patched: torch.Tensor, target: torch.Tensor, source: torch.Tensor, pair: tuple[int, int]
) -> torch.Tensor:
    """`batch` share of the logit difference ``pair[0] - pair[1]`` the patch restores.

    ``(d_patched - d_target) / (d_source - d_target)`` with ``d = logit[a] - logit[b]``:
    0 when the patch changes nothing, 1 when it gives the source's difference.
    """
    a, b = pair

    def diff(x: torch.Tensor) -> torch.Tensor:
        return x[:, a].float() - x[:, b].float()

    gap = diff(source) - diff(target)
    return (diff(patched) - diff(target)) / gap
