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
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Project residual-stream states to the vocabulary.

    Args:
        hidden: `batch layer hidden` output of each decoder layer at the answer position.
            It must NOT already be normalised (transformers' ``hidden_states[-1]`` is).
        norm: The model's final norm.
        unembed: The model's unembedding (``lm_head``).
        transform: What the model's forward does to the unembedding's output (Cohere's
            ``logit_scale``, Gemma 2's soft cap: ``Adapter.logit_transform``), if anything.

    Returns:
        `batch layer vocab` logits, in the model's dtype (as the model would compute them).
    """
    logits = unembed(norm(hidden))
    return logits if transform is None else transform(logits)


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
    """Entropy, top-k and candidate columns of vocabulary logits (float32 outputs).

    Differentiable in ``logits`` (except the integer ``topk_ids``). Holds two `... vocab`
    temporaries besides ``logits`` (log-probabilities and probabilities): the entropy is
    a dot product, not an elementwise product that would need a third.

    Args:
        logits: `... vocab` logits.
        candidate_ids: Token ids of the candidate answers.
        top_k: How many most probable tokens to keep.

    Returns:
        The :class:`DistributionStats` (entropy in nats, top-k ids and probabilities, the
        candidates' logits and probabilities), each `...` or `... k`.
    """
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    ent = -torch.linalg.vecdot(probs, logp)
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


#: Upper bound on the float32 lens logits projected at once (bytes), see `lens_statistics`.
LENS_CHUNK_BYTES = 2 * 2**20


def layers_per_chunk(batch: int, layers: int, vocab: int, budget: int = LENS_CHUNK_BYTES) -> int:
    """How many layers `lens_statistics` projects in one matrix product.

    As many as keep ``batch x chunk x vocab`` float32 logits within ``budget`` bytes, and
    at least one. One layer at a time multiplies a `batch hidden` slice by the whole
    unembedding matrix once per layer: for a small batch that reads the matrix (32 MB for
    a 32k vocabulary at width 256, 500 MB for LLaVA-7B in bf16) ``layer`` times and is
    bound by memory bandwidth (0.09 s of 0.77 s per capture in the benchmark). Stacking
    layers turns the reads into one matrix product per chunk, while the budget keeps the
    `vocab`-sized temporaries well under what the forward pass itself allocates.

    Args:
        batch: Rows of the batch.
        layers: Decoder layers to project.
        vocab: Vocabulary size.
        budget: Bytes the chunk's float32 logits may take.

    Returns:
        The number of layers per chunk (1 to ``layers``).
    """
    rows = max(1, budget // (4 * vocab))
    return max(1, min(layers, rows // max(batch, 1)))


def lens_statistics(
    hidden: torch.Tensor,
    norm: Callable[[torch.Tensor], torch.Tensor],
    unembed: Callable[[torch.Tensor], torch.Tensor],
    candidate_ids: tuple[int, ...],
    top_k: int,
    keep_logits: bool = False,
    vocab_size: int | None = None,
    chunk_bytes: int = LENS_CHUNK_BYTES,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[DistributionStats, torch.Tensor | None, torch.Tensor]:
    """`summarize` of the lens of every layer, a bounded chunk of layers at a time.

    Projecting all layers at once holds several `batch layer vocab` float32 tensors at
    the same time (logits, log-probabilities, probabilities); for a small-width model
    that doubles the forward pass's peak memory, while one layer at a time is slow
    (see `layers_per_chunk`). Chunks of layers whose logits fit `LENS_CHUNK_BYTES` get
    both: one matrix product per chunk, a few MiB of temporaries.

    Args:
        hidden: `batch layer hidden` un-normalised residual stream at the answer position.
        norm: The model's final norm.
        unembed: The model's unembedding.
        candidate_ids: Candidate token ids (`cand` axis order).
        top_k: Top tokens to keep.
        keep_logits: Also return the `batch layer vocab` logits (float32).
        vocab_size: Size of the unembedding's output (to size the chunks); None reads it
            from ``unembed.weight`` and falls back to one layer per chunk.
        chunk_bytes: Budget of one chunk's float32 logits (see `layers_per_chunk`).
        transform: The model's logit transform, if any (see `lens_logits`).

    Returns:
        `DistributionStats` with a `layer` axis after `batch`; the `batch layer vocab`
        logits or None; and the last layer's `batch vocab` logits in the model's dtype
        (what the model's own logits must equal: the capture's run-time check).
    """
    batch, layers = hidden.shape[0], hidden.shape[1]
    if vocab_size is None:
        weight = getattr(unembed, "weight", None)
        vocab_size = int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None
    chunk = layers_per_chunk(batch, layers, vocab_size, chunk_bytes) if vocab_size else 1
    per_chunk = []
    kept = []
    for start in range(0, layers, chunk):
        logits = lens_logits(hidden[:, start:start + chunk], norm, unembed, transform)
        per_chunk.append(summarize(logits, candidate_ids, top_k))
        if keep_logits:
            kept.append(logits.float())
    stats = DistributionStats(**{
        f.name: torch.cat([getattr(s, f.name) for s in per_chunk], dim=1)
        for f in fields(DistributionStats)})
    return stats, torch.cat(kept, dim=1) if keep_logits else None, logits[:, -1]
