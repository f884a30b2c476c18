"""The logits that predict the answer, and the supervised answer loss on them.

A prompt ends with the chat template's generation prompt (``... ASSISTANT:``); the answer's
first token is what the model emits next. The logits that *predict* it are those at the
last prompt position (the answer position of :meth:`ModalitySpans.answer_positions`), not
at the answer token itself: with the answer appended for teacher forcing, those would
predict the token after it (the mistake of the interference paper's public code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from modprobe.capture.attention import gather_positions
from modprobe.capture.trace import _last_logits_only, forward_kwargs


def answer_logits(loaded: Any, batch: Mapping[str, Any],
                  positions: torch.Tensor | None = None) -> torch.Tensor:
    """`batch vocab` float32 logits at each row's answer position, from one plain forward.

    The forward takes the same arguments as the capture's (:func:`forward_kwargs`:
    generation-style position ids, no cache), so these logits equal
    ``capture(loaded, batch).final_logits``; it runs under the caller's grad mode. Under
    left padding only the last position's logits are computed (``logits_to_keep=1``).

    Args:
        loaded: A :class:`modprobe.LoadedModel`.
        batch: ``loaded.encode(prompts)`` output.
        positions: `batch` positions to read instead of the answer positions.
    """
    batch = dict(batch)
    if positions is None:
        positions = loaded.spans(batch).answer_positions()
    positions = positions.to(loaded.device)
    kwargs = forward_kwargs(loaded, batch)
    if _last_logits_only(loaded.module, kwargs, positions):
        kwargs["logits_to_keep"] = 1
        positions = torch.zeros_like(positions)
    logits = loaded.module(**kwargs).logits
    return gather_positions(logits, positions, dim=1).float()


def answer_loss(logits: torch.Tensor, targets: torch.Tensor, *,
                reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of answer-position logits against the answer's first token id.

    ``-log softmax(logits[b])[targets[b]]``, averaged over rows (``reduction="mean"``) or
    per row (``"none"``) or summed (``"sum"``).

    Args:
        logits: `batch vocab` logits that predict the answer (at the last prompt position).
        targets: The answer's first token id, one per row.
        reduction: ``"mean"``, ``"none"`` or ``"sum"``.

    Returns:
        A scalar, or one loss per row for ``"none"``.

    Raises:
        ValueError: when the shapes do not pair one target with each row, or a target id
            falls outside the vocabulary.
    """
    targets = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
    if logits.dim() != 2 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets has {targets.shape[0]} ids for logits of shape "
                         f"{tuple(logits.shape)}; give one answer token id per row")
    if bool(((targets < 0) | (targets >= logits.shape[1])).any()):
        raise ValueError(f"target ids {targets.tolist()} fall outside the vocabulary "
                         f"(size {logits.shape[1]})")
    return F.cross_entropy(logits.float(), targets, reduction=reduction)
