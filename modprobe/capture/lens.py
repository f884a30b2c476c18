"""Logit lens: final norm then unembedding applied to each layer's residual stream.

The trace keeps only the answer position's hidden state of every decoder layer
(`batch layer hidden`), so the unembedding runs on ``batch x layer`` vectors, never on
``batch x seq``. Statistics come in float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
