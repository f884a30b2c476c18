"""Logit lens: final norm then unembedding applied to each layer's residual stream.

The trace keeps only the answer position's hidden state of every decoder layer
(`batch layer hidden`), so the unembedding runs on ``batch x layer`` vectors, never on
``batch x seq``. Statistics come in float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch


def lens_logits(
    hidden: torch.Tensor,
    norm: Callable[[torch.Tensor], torch.Tensor],
    unembed: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Project residual-stream states to the vocabulary.

    Args:
        hidden: `batch layer hidden` output of each decoder layer at the answer position.
            It must NOT already be normalised (transformers' ``hidden_states[-1]`` is).
        norm: The model's final norm.
        unembed: The model's unembedding (``lm_head``).

    Returns:
        `batch layer vocab` logits, in the model's dtype (as the model would compute them).
    """
    return unembed(norm(hidden))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of ``softmax(logits)`` over the last axis, in float32.

    Args:
        logits: `... vocab`.

    Returns:
        `...` entropy, ``-sum p log p``.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


@dataclass
class DistributionStats:
    """Summary of next-token distributions (lens layers or final logits).

    Attributes:
        entropy: `...` full-vocabulary entropy in nats.
        topk_ids: `... k` most probable token ids, best first.
        topk_probs: `... k` their probabilities.
        candidate_logits: `... cand` logit of each candidate answer.
        candidate_probs: `... cand` full-vocabulary probability of each candidate.
    """

    entropy: torch.Tensor
    topk_ids: torch.Tensor
    topk_probs: torch.Tensor
    candidate_logits: torch.Tensor
    candidate_probs: torch.Tensor


def summarize(
    logits: torch.Tensor, candidate_ids: tuple[int, ...], top_k: int
) -> DistributionStats:
    """Entropy, top-k and candidate columns of `... vocab` logits (float32 outputs).

    Differentiable in ``logits`` (except the integer ``topk_ids``).
    """
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    ent = -(probs * logp).sum(dim=-1)
    k = min(top_k, logits.shape[-1])
    topk_probs, topk_ids = probs.topk(k, dim=-1)
    cand = torch.tensor(candidate_ids, dtype=torch.long, device=logits.device)
    return DistributionStats(
        entropy=ent,
        topk_ids=topk_ids,
        topk_probs=topk_probs,
        candidate_logits=logits.index_select(-1, cand),
        candidate_probs=probs.index_select(-1, cand),
    )


def lens_statistics(
    hidden: torch.Tensor,
    norm: Callable[[torch.Tensor], torch.Tensor],
    unembed: Callable[[torch.Tensor], torch.Tensor],
    candidate_ids: tuple[int, ...],
    top_k: int,
    keep_logits: bool = False,
) -> tuple[DistributionStats, torch.Tensor | None]:
    """`summarize` of the lens of every layer, one layer at a time.

    Projecting all layers at once holds several `batch layer vocab` float32 tensors at
    the same time (logits, log-probabilities, probabilities); for a small-width model
    that doubles the forward pass's peak memory. Layer by layer, only one layer's
    `batch vocab` tensors are alive at once.

    Args:
        hidden: `batch layer hidden` un-normalised residual stream at the answer position.
        norm: The model's final norm.
        unembed: The model's unembedding.
        candidate_ids: Candidate token ids (`cand` axis order).
        top_k: Top tokens to keep.
        keep_logits: Also return the `batch layer vocab` logits (float32).

    Returns:
        `DistributionStats` with a `layer` axis after `batch`, and the logits or None.
    """
    per_layer = []
    kept = []
    for layer in range(hidden.shape[1]):
        logits = lens_logits(hidden[:, layer], norm, unembed)
        per_layer.append(summarize(logits, candidate_ids, top_k))
        if keep_logits:
            kept.append(logits.float())
    stats = DistributionStats(**{
        f.name: torch.stack([getattr(s, f.name) for s in per_layer], dim=1)
        for f in fields(DistributionStats)})
    return stats, torch.stack(kept, dim=1) if keep_logits else None
