"""Differentiable capture: gradients through attention mass and lens logits are exact.

A scalar built from ``capture(..., grad=True)`` (attention mass of every layer/head/span
and lens logits of the candidates) is differentiated with respect to q_proj weights of
the SDPA model; the reference builds the same scalar by hand from the eager copy's
``output_attentions`` and ``output_hidden_states`` (float32) and differentiates that.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import modprobe
from modprobe.capture import capture
from modprobe.capture.reference import user_reference
from modprobe.testing import COLOR_WORDS
from modprobe.testing.images import noise_image


def _prompts() -> list[modprobe.Prompt]:
    return [
        modprobe.Prompt(
            "What color is the circle ?",
            context="The circle is red .",
            images=[noise_image(0, (32, 32))],
        ),
        modprobe.Prompt("What color is it ?", images=[noise_image(1, (64, 32))]),
    ]




def _scalar(mass: torch.Tensor, cand_logits: torch.Tensor) -> torch.Tensor:
    """A training-loss-like scalar mixing every layer's mass and candidate lens logits."""
    gen = torch.Generator().manual_seed(0)
    w_mass = torch.randn(mass.shape, generator=gen)
    w_lens = torch.randn(cand_logits.shape, generator=gen)
    return (mass * w_mass).sum() + 0.1 * (cand_logits * w_lens).sum()


def test_gradients_match_eager(pair: tuple[Any, Any]) -> None:
    lm, eager = pair
    batch = lm.encode(_prompts())
    cands = list(COLOR_WORDS[:3])
    n_layers = lm.adapter.num_layers(lm.module)
    layers = [0, n_layers - 1]

    def q_weights(loaded: Any) -> list[torch.Tensor]:
        return [loaded.adapter.attention_module(loaded.module, i).q_proj.weight for i in layers]

    cap = capture(lm, batch, candidates=cands, grad=True)
    assert cap.attention_mass.requires_grad and cap.lens_candidate_logits.requires_grad
    grads = torch.autograd.grad(
        _scalar(cap.attention_mass, cap.lens_candidate_logits), q_weights(lm)
    )

    ref, _ = user_reference(eager, _prompts())  # each prompt alone, as a user runs it
    ids = torch.tensor(cap.candidates.ids)
    ref_scalar = _scalar(ref.attention_mass, ref.lens_logits[..., ids])
    ref_grads = torch.autograd.grad(ref_scalar, q_weights(eager))

    for layer, g, r in zip(layers, grads, ref_grads, strict=True):
        scale = float(r.abs().max())
        assert scale > 1e-3, f"layer {layer}: the reference gradient vanishes"
        diff = float((g - r).abs().max())
        assert diff <= 1e-5 * max(1.0, scale), (
            f"layer {layer}: grad differs by {diff:.2e} (scale {scale:.2e})"
        )


@pytest.mark.parametrize("family", ["llava"])  # one family is enough
def test_no_grad_by_default(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    cap = capture(lm, _prompts(), candidates=["red"])
    assert not cap.attention_mass.requires_grad
    assert not cap.lens_candidate_logits.requires_grad
