"""The capture's pure math: attention rows, span mass, lens statistics, candidates.

No model and no nnsight: answer-position rows are checked against a full eager-style
attention matrix built the textbook way (repeat_kv, full scores, additive mask, softmax).
"""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from modprobe.capture import (
    CandidateError,
    allowed_keys,
    answer_attention_rows,
    attention_rows_to_mass,
    resolve_candidates,
    summarize,
)
from modprobe.spans import SPAN_NAMES, ModalitySpans

B, H, KV, S, D = 3, 4, 2, 9, 8


def _full_attention(
    q: torch.Tensor, k: torch.Tensor, keep: torch.Tensor, scaling: float
) -> torch.Tensor:
    """`batch head seq seq` softmax(QK^T * s + mask), keys repeated per group (HF repeat_kv)."""
    k_rep = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = q @ k_rep.transpose(-1, -2) * scaling
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return scores.softmax(-1)


def _keep_matrix(attention_mask: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """`batch 1 seq seq` booleans: causal, padding and optional sliding window."""
    i = torch.arange(S).view(-1, 1)
    j = torch.arange(S).view(1, -1)
    keep = j <= i
    if window is not None:
        keep = keep & (j > i - window)
    return (keep.unsqueeze(0) & attention_mask.bool().unsqueeze(1)).unsqueeze(1)


@pytest.fixture
def qk() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, S, D, generator=gen, dtype=torch.float64) * 2
    k = torch.randn(B, KV, S, D, generator=gen, dtype=torch.float64) * 2
    attention_mask = torch.ones(B, S, dtype=torch.long)
    attention_mask[1, :3] = 0  # left padding
    attention_mask[2, :1] = 0
    return q, k, attention_mask


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return torch.tensor([S - 1, S - 1, 5])  # row 2 asks for an earlier query position


@pytest.mark.parametrize("mask_kind", ["bool", "float", "none"])
@pytest.mark.parametrize("window", [None, 3])
def test_rows_match_full_attention(qk: tuple, mask_kind: str, window: int | None) -> None:
    q, k, attention_mask = qk
    pos = _positions(attention_mask)
    keep = _keep_matrix(attention_mask, window)
    full = _full_attention(q, k, keep, 0.3)
    expected = full[torch.arange(B), :, pos]
    if mask_kind == "bool":
        mask = keep
    elif mask_kind == "float":
        mask = torch.zeros(keep.shape, dtype=q.dtype).masked_fill(~keep, torch.finfo(q.dtype).min)
    else:
        mask = None
    rows = answer_attention_rows(
        q, k, pos, 0.3, mask, attention_mask=attention_mask, sliding_window=window
    )
    assert rows.shape == (B, H, S)
    assert torch.allclose(rows.double(), expected, atol=1e-6)
    # padding and future keys get nothing
    assert rows[1, :, :3].abs().max() == 0
    assert rows[2, :, 6:].abs().max() == 0


def test_chunked_rows_match_full_attention(qk: tuple) -> None:
    """Chunked layers (Llama 4) rebuilt without a mask: keys of the query's chunk only."""
    q, k, _ = qk
    ones = torch.ones(B, S, dtype=torch.long)
    i = torch.arange(S).view(-1, 1)
    j = torch.arange(S).view(1, -1)
    keep = ((j <= i) & (j // 4 == i // 4)).view(1, 1, S, S).expand(B, 1, S, S)
    pos = torch.tensor([S - 1, 6, 3])
    expected = _full_attention(q, k, keep, 0.3)[torch.arange(B), :, pos]
    rows = answer_attention_rows(q, k, pos, 0.3, None, attention_mask=ones, chunk_size=4)
    assert torch.allclose(rows.double(), expected, atol=1e-6)
    assert rows[0, :, :8].abs().max() == 0 and rows[1, :, :4].abs().max() == 0


def test_softcapped_rows_match_eager_formula(qk: tuple) -> None:
    """Soft-capped scores (Gemma 2): cap * tanh(scores / cap), then mask and softmax."""
    q, k, attention_mask = qk
    keep = _keep_matrix(attention_mask)
    pos = _positions(attention_mask)
    k_rep = k.repeat_interleave(H // KV, dim=1)
    scores = q @ k_rep.transpose(-1, -2) * 0.3
    scores = torch.tanh(scores / 2.0) * 2.0
    expected = scores.masked_fill(~keep, torch.finfo(scores.dtype).min).softmax(-1)
    expected = expected[torch.arange(B), :, pos]
    rows = answer_attention_rows(q, k, pos, 0.3, keep, softcap=2.0)
    assert torch.allclose(rows.double(), expected, atol=1e-6)
    plain = answer_attention_rows(q, k, pos, 0.3, keep)
    assert (rows.double() - plain.double()).abs().max() > 1e-2, "the cap matters here"


def test_mask_with_broadcast_batch(qk: tuple) -> None:
    q, k, _ = qk
    ones = torch.ones(B, S, dtype=torch.long)
    keep = _keep_matrix(ones)[:1]  # `1 1 seq seq`, as a mask shared by the batch
    pos = torch.full((B,), S - 1)
    rows = answer_attention_rows(q, k, pos, 0.5, keep)
    expected = _full_attention(q, k, keep.expand(B, -1, -1, -1), 0.5)[:, :, -1]
    assert torch.allclose(rows.double(), expected, atol=1e-6)


def test_allowed_keys_window_and_padding() -> None:
    keep = allowed_keys(
        torch.tensor([4, 4]), 6, torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]]), sliding_window=3
    )
    assert keep.tolist() == [
        [False, False, True, True, True, False],
        [False, False, True, True, True, False],
    ]


def test_mass_sums_to_one_and_matches_loop(qk: tuple) -> None:
    q, k, attention_mask = qk
    codes = torch.tensor(
        [[0, 0, 0, 3, 3, 1, 1, 3, 3], [-1, -1, -1, 0, 0, 3, 2, 3, 3], [-1, 3, 0, 0, 0, 0, 3, 3, 3]]
    )
    spans = ModalitySpans(codes)
    pos = _positions(attention_mask)
    rows = answer_attention_rows(q, k, pos, 0.3, None, attention_mask=attention_mask)
    mass = attention_rows_to_mass(rows, spans)
    assert mass.shape == (B, H, len(SPAN_NAMES))
    assert torch.allclose(mass.sum(-1), torch.ones(B, H, dtype=mass.dtype), atol=1e-6)
    for b in range(B):
        for h in range(H):
            for c in range(len(SPAN_NAMES)):
                manual = sum(float(rows[b, h, s]) for s in range(S) if int(codes[b, s]) == c)
                assert math.isclose(float(mass[b, h, c]), manual, abs_tol=1e-6)


def test_mass_accepts_extra_axes_and_one_hot() -> None:
    probs = torch.rand(2, 3, 4, 5).softmax(-1)  # batch layer head seq
    spans = ModalitySpans(torch.tensor([[3, 0, 0, 3, 3], [-1, 3, 0, 3, 3]]))
    mass = attention_rows_to_mass(probs, spans.one_hot())
    assert mass.shape == (2, 3, 4, len(SPAN_NAMES))
    assert torch.allclose(mass[0].sum(-1), torch.ones(3, 4))


def test_gradients_match_full_attention(qk: tuple) -> None:
    q, k, attention_mask = qk
    pos = _positions(attention_mask)
    spans = ModalitySpans(torch.tensor([[0, 0, 0, 3, 3, 1, 1, 3, 3]] * B))
    weights = torch.randn(B, H, len(SPAN_NAMES), generator=torch.Generator().manual_seed(1))

    def grads(use_rows: bool) -> tuple[torch.Tensor, torch.Tensor]:
        q_ = q.float().clone().requires_grad_(True)
        k_ = k.float().clone().requires_grad_(True)
        if use_rows:
            rows = answer_attention_rows(q_, k_, pos, 0.3, None, attention_mask=attention_mask)
        else:
            rows = _full_attention(q_, k_, _keep_matrix(attention_mask), 0.3)[
                torch.arange(B), :, pos
            ]
        (attention_rows_to_mass(rows, spans) * weights).sum().backward()
        return q_.grad, k_.grad  # type: ignore[return-value]

    (gq, gk), (rq, rk) = grads(True), grads(False)
    assert gq.abs().max() > 0
    assert torch.allclose(gq, rq, atol=1e-5) and torch.allclose(gk, rk, atol=1e-5)


def test_summarize_entropy_topk_candidates() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    stats = summarize(logits, (3, 0), top_k=2)
    p = logits.softmax(-1)
    assert torch.allclose(stats.entropy, -(p * p.log()).sum(-1))
    assert math.isclose(float(stats.entropy[1]), math.log(4), rel_tol=1e-6)
    assert stats.topk_ids[0].tolist() == [0, 1]
    assert torch.allclose(stats.candidate_logits, logits[:, [3, 0]])
    assert torch.allclose(stats.candidate_probs, p[:, [3, 0]])


class _FakeTokenizer:
    """Maps words to fixed token lists (``redish`` starts with the same token as ``red``)."""

    vocab: ClassVar[dict[str, list[int]]] = {"red": [5], "blue": [6], "redish": [5, 9], "": []}

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert add_special_tokens is False
        return {"input_ids": self.vocab[text]}

    def decode(self, ids: list[int]) -> str:
        return {5: "red", 6: "blue", 9: "ish"}.get(ids[0], f"<{ids[0]}>")

    def convert_ids_to_tokens(self, i: int) -> str:
        return f"<{i}>"


def test_candidates_resolve_ids_and_strings() -> None:
    cands = resolve_candidates(["red", 7, "blue"], _FakeTokenizer(), vocab_size=10)
    assert cands.ids == (5, 7, 6)
    assert cands.labels == ("red", "#7", "blue")
    assert cands.tokens == ("red", "<7>", "blue")


def test_candidate_collision_names_both() -> None:
    with pytest.raises(CandidateError, match=r"'red' and 'redish'.*token id 5"):
        resolve_candidates(["red", "blue", "redish"], _FakeTokenizer(), vocab_size=10)
    with pytest.raises(CandidateError, match=r"'blue' and 6"):
        resolve_candidates(["blue", 6], _FakeTokenizer(), vocab_size=10)


def test_candidate_errors() -> None:
    with pytest.raises(CandidateError, match="outside the vocabulary"):
        resolve_candidates([12], _FakeTokenizer(), vocab_size=10)
    with pytest.raises(CandidateError, match="no token"):
        resolve_candidates([""], _FakeTokenizer(), vocab_size=10)
    with pytest.raises(CandidateError, match="neither"):
        resolve_candidates([1.5], _FakeTokenizer(), vocab_size=10)  # type: ignore[list-item]
