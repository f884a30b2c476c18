"""Activation patching: a target run's residual stream overwritten with a source run's.

See :mod:`modprobe.capture.interventions` for what corresponds to what.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from modprobe.capture.attention import gather_positions
from modprobe.capture.intervention_common import (
    InterventionError,
    check_layers,
    encode_batch,
    layer_output,
    logit_setup,
)
from modprobe.spans import SPAN_NAMES, ModalitySpans

PATCH_SITES = ("all", "answer", *SPAN_NAMES)


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

    Args:
        target: Spans of the run that is patched.
        source: Spans of the run the values come from, row for row with ``target``.
        site: ``"all"``, ``"answer"`` or a span name (:data:`PATCH_SITES`).

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
    """`batch seq hidden` output of each of ``layers`` (one trace, no intervention).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        batch: An encoded batch.
        layers: The decoder layers to read.

    Returns:
        ``{layer: `batch seq hidden` output}``.
    """
    model = loaded.model
    envoys = loaded.adapter.decoder_layers(model)
    saved: dict[int, Any] = {}
    # no logits are read: only the last position's are computed where the forward allows
    kwargs, _ = logit_setup(loaded, batch, loaded.spans(batch).answer_positions())
    with torch.no_grad(), model.trace(**kwargs):
        for i in layers:
            saved[i] = layer_output(envoys[i]).save()
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
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        batch: The target run's encoded batch.
        positions: `batch` positions to read the logits at (the answer positions).
        layer: The decoder layer whose output is overwritten.
        where: ``(rows, seq_positions)`` of the target to overwrite.
        values: `n hidden` the new residual stream at those positions.

    Returns:
        The patched run's logits, one row per batch row.
    """
    model = loaded.model
    envoy = loaded.adapter.decoder_layers(model)[layer]
    rows, cols = where
    kwargs, logit_positions = logit_setup(loaded, batch, positions)
    with torch.no_grad(), model.trace(**kwargs):
        out = layer_output(envoy)
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
    target_batch, source_batch = encode_batch(loaded, target), encode_batch(loaded, source)
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

    Args:
        patched: `batch vocab` logits of the patched target run.
        target: `batch vocab` logits of the target run unpatched.
        source: `batch vocab` logits of the source run.
        pair: ``(a, b)`` token ids whose logit difference is compared.

    Returns:
        The share per row (``nan`` or ``inf`` where source and target have the same
        difference).
    """
    a, b = pair

    def diff(x: torch.Tensor) -> torch.Tensor:
        return x[:, a].float() - x[:, b].float()

    gap = diff(source) - diff(target)
    return (diff(patched) - diff(target)) / gap
