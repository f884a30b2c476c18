"""The capture engine: logit lens and attention mass at the answer position, in one trace.

```python
import modprobe
from modprobe.capture import capture

lm = modprobe.load("llava")
cap = capture(lm, [modprobe.Prompt("What color is the circle?", images=[img])],
              candidates=["red", "blue"], top_k=5)
cap.lens_candidate_logits      # batch layer cand
cap.attention_mass             # batch layer head span (image, video, audio, context, text)
frames = cap.to_frames()       # tidy tables: frames.lens, frames.attention, frames.final
```

``capture(..., grad=True)`` runs the same reads with autograd on, so a training loss can
use the attention mass and lens logits. See ``docs/capture.md``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from modprobe.adapters.base import Prompt
from modprobe.capture.attention import (
    allowed_keys,
    answer_attention_rows,
    attention_rows_to_mass,
    gather_positions,
)
from modprobe.capture.candidates import Candidate, CandidateError, Candidates, resolve_candidates
from modprobe.capture.invariants import (
    CaptureInvariantError,
    check_lens_is_logits,
    check_mass_sums_to_one,
)
from modprobe.capture.lens import entropy, lens_logits, lens_statistics, summarize
from modprobe.capture.result import Capture, CaptureFrames
from modprobe.capture.trace import CaptureTraceError, run_trace
from modprobe.errors import ModprobeError
from modprobe.spans import ModalitySpans


class CaptureOptionError(ModprobeError, ValueError):
    """An argument of :func:`capture` that cannot work (``top_k=-1``)."""


def _check_top_k(top_k: Any) -> int:
    try:
        value = operator.index(top_k)  # ints and numpy integers, not 2.5 or True
    except TypeError:
        value = None
    if value is None or isinstance(top_k, bool) or value < 1:
        raise CaptureOptionError(f"capture: top_k must be a positive integer (the most "
                                 f"probable tokens kept per layer), got {top_k!r}")
    return value


def _query_positions(
    spans: ModalitySpans, positions: Sequence[int] | torch.Tensor | None
) -> torch.Tensor:
    """`batch` query positions: the answer positions, or the given ones after checks."""
    answer = spans.answer_positions()
    if positions is None:
        return answer
    pos = torch.as_tensor(positions, dtype=torch.long, device=spans.codes.device).reshape(-1)
    if pos.shape[0] != spans.batch_size:
        raise ValueError(
            f"positions has {pos.shape[0]} entries for a batch of {spans.batch_size} rows"
        )
    if bool(((pos < 0) | (pos >= spans.seq_len)).any()):
        raise ValueError(
            f"positions {pos.tolist()} fall outside the sequence (length {spans.seq_len})"
        )
    rows = torch.arange(spans.batch_size, device=pos.device)
    if bool((spans.codes[rows, pos] < 0).any()):
        raise ValueError(f"positions {pos.tolist()} include a padding token")
    return pos


def _check_tuned(loaded: Any, lens: Any, translators: Any) -> Any:
    """The translators for ``lens="tuned"`` (checked against the model), else None."""
    if lens not in (True, False, "logit", "tuned"):
        raise CaptureOptionError(f"capture: lens must be True, False, 'logit' or 'tuned', "
                                 f"got {lens!r}")
    if lens != "tuned":
        return None
    if translators is None:
        raise CaptureOptionError("capture: lens='tuned' needs translators=...; train them with "
                                 "modprobe.capture.tuned.train_translators or load them with "
                                 "Translators.load")
    translators.check(loaded)
    return translators


def _tuned_fields(loaded: Any, hidden: torch.Tensor, translators: Any, ids: tuple[int, ...],
                  top_k: int, keep: bool) -> dict[str, torch.Tensor | None]:
    """``tuned_*`` fields: the lens statistics of the translated residual stream."""
    norm = loaded.adapter.norm(loaded.module)
    unembed = loaded.adapter.lm_head(loaded.module)
    stats, kept, _ = lens_statistics(translators.apply(hidden).to(hidden.dtype).to(
        unembed.weight.device), norm, unembed, ids, top_k, keep_logits=keep,
        transform=loaded.adapter.logit_transform(loaded.module))
    return {"tuned_entropy": stats.entropy, "tuned_topk_ids": stats.topk_ids,
            "tuned_topk_probs": stats.topk_probs,
            "tuned_candidate_logits": stats.candidate_logits,
            "tuned_candidate_probs": stats.candidate_probs, "tuned_logits": kept}


def _lens_fields(loaded: Any, hidden: torch.Tensor, ids: Sequence[int], top_k: int,
                 keep: bool, transform: Any) -> tuple[dict[str, torch.Tensor | None],
                                                      torch.Tensor]:
    """``lens_*`` fields: the logit lens statistics of the residual stream.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        hidden: `batch layer hidden` residual stream at the query positions.
        ids: The candidates' token ids.
        top_k: How many most probable tokens to keep per layer.
        keep: Also return the `batch layer vocab` lens logits (``lens_logits``).
        transform: The model's logit transform (:meth:`Adapter.logit_transform`).

    Returns:
        ``(fields, last)``: the ``lens_*`` fields of :class:`Capture`, and the last
        layer's lens logits (checked against the model's own).
    """
    norm = loaded.adapter.norm(loaded.module)
    unembed = loaded.adapter.lm_head(loaded.module)
    stats, kept, last = lens_statistics(hidden.to(unembed.weight.device), norm, unembed, ids,
                                        top_k, keep_logits=keep, transform=transform)
    return {"lens_entropy": stats.entropy, "lens_topk_ids": stats.topk_ids,
            "lens_topk_probs": stats.topk_probs,
            "lens_candidate_logits": stats.candidate_logits,
            "lens_candidate_probs": stats.candidate_probs, "lens_logits": kept}, last


def capture(
    loaded: Any,
    prompts_or_batch: Sequence[Prompt] | Mapping[str, Any],
    *,
    candidates: Sequence[Candidate] | None = None,
    top_k: int = 5,
    positions: Sequence[int] | torch.Tensor | None = None,
    grad: bool = False,
    lens: bool | str = True,
    attention: bool = True,
    keep_lens_logits: bool = False,
    translators: Any = None,
) -> Capture:
    """Logit lens and attention mass of every decoder layer, at the answer position.

    One nnsight trace over the padded batch; the model runs as loaded (SDPA). See
    :class:`Capture` for the fields and their shapes.

    Args:
        loaded: A :class:`modprobe.LoadedModel` (from :func:`modprobe.load`).
        prompts_or_batch: Prompts (encoded with ``loaded.encode``, left padded) or an
            already encoded batch (``loaded.encode``'s dict; a batch without its
            ``context_mask`` gets an empty context span, its descriptions counted as text).
        candidates: Candidate answers: token ids, or strings whose first token (tokenized
            without special tokens) is used.
        top_k: How many most probable tokens to keep per layer.
        positions: One query position per row instead of the answer position (the last
            prompt token); must not be padding.
        grad: Keep autograd on: every float tensor of the result is attached to the
            graph, so a loss on attention mass or lens logits trains the model.
        lens: Capture the logit lens (``lens_*`` fields); ``"tuned"``: also the tuned
            lens (``tuned_*`` fields) through ``translators``.
        attention: Capture the attention mass (``attention_mass``; with ``grad`` also
            ``attention_log_mass``, its log computed from the scores, for losses).
        keep_lens_logits: Also return the `batch layer vocab` lens logits (and tuned-lens
            logits under ``lens="tuned"``).
        translators: :class:`modprobe.capture.tuned.Translators` of this model, for
            ``lens="tuned"``.

    Returns:
        The :class:`Capture`.

    Raises:
        CandidateError: a candidate is unknown, or two candidates share a first token.
        CaptureOptionError: ``top_k`` is not a positive integer.
        CaptureTraceError: the model's attention modules are not shaped as expected.
        CaptureInvariantError: the last layer's lens is not the model's own logits, or the
            attention mass does not sum to 1 over the spans (see ``docs/capture.md``).
    """
    top_k = _check_top_k(top_k)
    tuned = _check_tuned(loaded, lens, translators)
    batch = (dict(prompts_or_batch) if isinstance(prompts_or_batch, Mapping)
             else loaded.encode(list(prompts_or_batch)))
    spans = loaded.spans(batch)
    query = _query_positions(spans, positions)
    vocab_size = int(loaded.adapter.lm_head(loaded.module).weight.shape[0])
    cands = resolve_candidates(candidates, loaded.tokenizer, vocab_size)
    transform = loaded.adapter.logit_transform(loaded.module)
    family = loaded.adapter.family
    with torch.enable_grad() if grad else torch.no_grad():
        raw = run_trace(loaded, batch, spans, query, lens=lens, attention=attention)
        final = summarize(raw.final_logits, cands.ids, top_k)
        lens_fields: dict[str, torch.Tensor | None] = {}
        if raw.hidden is not None:
            lens_fields, last = _lens_fields(loaded, raw.hidden, cands.ids, top_k,
                                             keep_lens_logits, transform)
            if tuned is not None:
                lens_fields.update(_tuned_fields(loaded, raw.hidden, tuned, cands.ids, top_k,
                                                 keep_lens_logits))
    # The run-time checks come last: their one host sync then waits for work that the
    # caller needs anyway, instead of holding back the lens's kernels.
    if raw.attention_mass is not None:
        check_mass_sums_to_one(raw.attention_mass, family, spans.seq_len)
    if raw.hidden is not None:
        check_lens_is_logits(last, raw.final_logits, family, transform.describe())
    return Capture(
        spans=spans, answer_positions=query, candidates=cands, tokenizer=loaded.tokenizer,
        final_logits=raw.final_logits.float(), final_entropy=final.entropy,
        final_topk_ids=final.topk_ids, final_topk_probs=final.topk_probs,
        final_candidate_logits=final.candidate_logits,
        final_candidate_probs=final.candidate_probs, attention_mass=raw.attention_mass,
        attention_log_mass=raw.attention_log_mass, **lens_fields)


__all__ = [
    "Candidate",
    "CandidateError",
    "Candidates",
    "Capture",
    "CaptureFrames",
    "CaptureInvariantError",
    "CaptureOptionError",
    "CaptureTraceError",
    "allowed_keys",
    "answer_attention_rows",
    "attention_rows_to_mass",
    "capture",
    "entropy",
    "gather_positions",
    "lens_logits",
    "lens_statistics",
    "resolve_candidates",
    "summarize",
]
