"""Attention knockout under SDPA equals the same masking done by hand in eager attention.

The reference runs the eager copy of each tiny model (same weights, sharpened attention)
through its own forward with a plain PyTorch forward pre-hook on the knocked-out layers'
attention modules: the hook takes the 4-D additive mask eager attention receives and
sets ``-inf``-like entries on the answer row at the span's keys (its own key kept), with
a loop over rows written independently of modprobe's mask code. No nnsight.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

import modprobe
from modprobe.capture.interventions import InterventionError, knockout
from modprobe.capture.trace import forward_kwargs
from modprobe.testing import COLOR_WORDS
from modprobe.testing.images import noise_image

TOL = 1e-5


def _prompts() -> list[modprobe.Prompt]:
    return [
        modprobe.Prompt("What color is the circle ? Please answer with one word .",
                        context="The circle is red .", images=[noise_image(0, (32, 32))]),
        modprobe.Prompt("What color is it ?", context="It is blue .",
                        images=[noise_image(1, (64, 32))]),
    ]


@contextmanager
def eager_knockout(eager: Any, layers: list[int], keys: torch.Tensor,
                   positions: torch.Tensor) -> Iterator[None]:
    """Block ``keys`` (`batch seq` bool) for the query ``positions`` in eager attention."""
    adapter, module = eager.adapter, eager.module
    handles = []

    def hook(_mod: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        mask = kwargs["attention_mask"]
        assert mask is not None and mask.dim() == 4 and mask.dtype != torch.bool
        mask = mask.expand(keys.shape[0], *mask.shape[1:]).clone()
        for row in range(keys.shape[0]):
            q = int(positions[row])
            for k in range(keys.shape[1]):
                if bool(keys[row, k]) and k != q:
                    mask[row, :, q, k] = torch.finfo(mask.dtype).min
        return args, {**kwargs, "attention_mask": mask}

    try:
        for i in layers:
            attn = getattr(adapter.decoder_layers(module)[i], adapter.attention)
            handles.append(attn.register_forward_pre_hook(hook, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


def _eager_logits(eager: Any, batch: dict, positions: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = eager.module(**forward_kwargs(eager, batch)).logits
    return logits[torch.arange(logits.shape[0]), positions]


@pytest.mark.parametrize(("span", "layers"), [("image", [0]), ("context", [1]),
                                              ("text", [0, 1]), ("image", [0, 1])])
def test_knockout_matches_eager_masking(pair: tuple[Any, Any], span: str,
                                        layers: list[int]) -> None:
    lm, eager = pair
    batch = lm.encode(_prompts())
    spans = lm.spans(batch)
    positions = spans.answer_positions()
    out = knockout(lm, batch, span=span, layers=layers, candidates=list(COLOR_WORDS[:3]))
    with eager_knockout(eager, layers, spans.mask(span), positions):
        ref = _eager_logits(eager, batch, positions)
    clean_ref = _eager_logits(eager, batch, positions)
    assert float((out.clean_logits - clean_ref).abs().max()) <= TOL
    assert float((out.knocked_logits - ref).abs().max()) <= TOL
    # discriminating: the knockout changes the logits by far more than the tolerance
    assert float((out.knocked_logits - out.clean_logits).abs().max()) > 100 * TOL


@pytest.mark.parametrize("family", ["llava"])
def test_knockout_refuses_bad_input(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    n = lm.adapter.num_layers(lm.module)
    text_only = [modprobe.Prompt("What color is it ?")]
    with pytest.raises(InterventionError, match="span 'image' has no tokens in row"):
        knockout(lm, text_only, span="image", layers=[0])
    with pytest.raises(InterventionError, match=rf"out of range.*0\.\.{n - 1}"):
        knockout(lm, _prompts(), span="image", layers=[n])
    with pytest.raises(InterventionError, match="unknown span 'pixels'"):
        knockout(lm, _prompts(), span="pixels", layers=[0])
    # without candidates: full logits, an empty candidate axis
    out = knockout(lm, _prompts(), span="image", layers=[0])
    assert out.knocked_candidate_logits.shape == (2, 0) and out.knocked_logits.shape[0] == 2
