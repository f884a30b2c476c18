"""Tests of modprobe.capture.lens: chunked lens statistics equal layer-by-layer ones."""

from __future__ import annotations

import pytest
import torch

from modprobe.capture.lens import (
    LENS_CHUNK_BYTES,
    layers_per_chunk,
    lens_logits,
    lens_statistics,
    summarize,
)


def test_layers_per_chunk_keeps_logits_within_budget() -> None:
    # 2 MiB of float32 logits over a 32,064 vocabulary is 16 rows.
    assert layers_per_chunk(batch=1, layers=32, vocab=32064) == 16
    assert layers_per_chunk(batch=4, layers=32, vocab=32064) == 4
    assert layers_per_chunk(batch=1, layers=8, vocab=32064) == 8  # never more than the layers
    # A row bigger than the budget, or a batch wider than it: still one layer at a time.
    assert layers_per_chunk(batch=1, layers=32, vocab=10**6) == 1
    assert layers_per_chunk(batch=64, layers=32, vocab=32064) == 1
    for batch in (1, 3, 16):
        chunk = layers_per_chunk(batch, 40, 152064)
        assert chunk >= 1 and (chunk == 1 or batch * chunk * 152064 * 4 <= LENS_CHUNK_BYTES)


def _model(hidden: int = 12, vocab: int = 50) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return torch.nn.RMSNorm(hidden), torch.nn.Linear(hidden, vocab, bias=False)


@pytest.mark.parametrize("chunk_bytes", [1, 3 * 2 * 50 * 4, 10**9])
def test_chunked_statistics_equal_layer_by_layer(chunk_bytes: int) -> None:
    norm, unembed = _model()
    hidden = torch.randn(2, 7, 12)  # 7 layers: 1, 3 (uneven: 3+3+1) or 7 per chunk
    cands = (4, 0, 49)
    stats, kept, last = lens_statistics(hidden, norm, unembed, cands, top_k=3,
                                        keep_logits=True, chunk_bytes=chunk_bytes)
    assert torch.equal(last, kept[:, -1]), "the last layer's logits, for the run-time check"
    with torch.no_grad():
        for layer in range(7):
            logits = lens_logits(hidden[:, layer], norm, unembed)
            ref = summarize(logits, cands, top_k=3)
            assert torch.allclose(kept[:, layer], logits, atol=1e-6)
            assert torch.allclose(stats.entropy[:, layer], ref.entropy, atol=1e-6)
            assert torch.equal(stats.topk_ids[:, layer], ref.topk_ids)
            assert torch.allclose(stats.topk_probs[:, layer], ref.topk_probs, atol=1e-6)
            assert torch.allclose(stats.candidate_logits[:, layer], ref.candidate_logits, atol=1e-6)
            assert torch.allclose(stats.candidate_probs[:, layer], ref.candidate_probs, atol=1e-6)
    assert stats.entropy.shape == (2, 7) and stats.topk_ids.shape == (2, 7, 3)


def test_chunked_statistics_are_differentiable() -> None:
    norm, unembed = _model()
    hidden = torch.randn(2, 5, 12)

    def grad(chunk_bytes: int) -> torch.Tensor:
        unembed.zero_grad()
        stats, _, _ = lens_statistics(hidden, norm, unembed, (1, 2), top_k=2,
                                   chunk_bytes=chunk_bytes)
        (stats.entropy.sum() + stats.candidate_logits[..., 0].sum()).backward()
        return unembed.weight.grad.clone()

    chunked, one_by_one = grad(10**9), grad(1)
    assert chunked.abs().max() > 0
    assert torch.allclose(chunked, one_by_one, atol=1e-6)


def test_summarize_entropy_matches_definition() -> None:
    logits = torch.randn(3, 4, 50) * 3
    p = logits.softmax(-1)
    assert torch.allclose(summarize(logits, (0,), 1).entropy, -(p * p.log()).sum(-1), atol=1e-5)
