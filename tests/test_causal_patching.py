"""Activation patching between runs: invariants on the tiny models of every family.

Patching a run with itself changes nothing; patching every position (or only the answer
position) at the last layer gives the source run's logits exactly, padded batches
included; positions that do not correspond between the runs are refused.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import modprobe
from modprobe.capture.interventions import (
    InterventionError,
    clean_logits,
    patch,
    restored_share,
)
from modprobe.testing.images import noise_image

TOL = 1e-5


def _prompts(seed: int, word: str) -> list[modprobe.Prompt]:
    """Two rows of different lengths (padded); the seed and word change content, not layout."""
    return [
        modprobe.Prompt("What color is the circle ? Please answer with one word .",
                        context=f"The circle is {word} .", images=[noise_image(seed, (32, 32))]),
        modprobe.Prompt("What color is it ?", images=[noise_image(seed + 1, (64, 32))]),
    ]


def _clean(lm: Any, prompts: list[modprobe.Prompt]) -> torch.Tensor:
    batch = lm.encode(prompts)
    return clean_logits(lm, batch, lm.spans(batch).answer_positions()).float()


def test_patching_a_run_with_itself_changes_nothing(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    prompts = _prompts(0, "red")
    n = lm.adapter.num_layers(lm.module)
    clean = _clean(lm, prompts)
    for site in ("all", "answer", "image"):
        out = patch(lm, prompts, prompts, layers=range(n), site=site)
        for layer, logits in out.items():
            assert float((logits - clean).abs().max()) <= TOL, (site, layer)


def test_patching_the_last_layer_gives_the_source_logits(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    target, source = _prompts(0, "red"), _prompts(7, "blue")
    n = lm.adapter.num_layers(lm.module)
    t_clean, s_clean = _clean(lm, target), _clean(lm, source)
    assert float((t_clean - s_clean).abs().max()) > 100 * TOL, "the two runs must differ"
    for site in ("all", "answer"):
        out = patch(lm, target, source, layers=[n - 1], site=site)
        assert float((out[n - 1] - s_clean).abs().max()) <= TOL, site
    # an early layer's patch of the answer position alone restores only part of the gap
    early = patch(lm, target, source, layers=[0], site="answer")[0]
    assert float((early - s_clean).abs().max()) > 100 * TOL
    share = restored_share(out[n - 1], t_clean, s_clean, (0, 1))
    assert torch.allclose(share, torch.ones_like(share), atol=1e-3)


@pytest.mark.parametrize("family", ["llava"])
def test_patching_refuses_positions_without_counterpart(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    multimodal = _prompts(0, "red")
    text_only = [modprobe.Prompt(p.text, context=p.context) for p in multimodal]
    with pytest.raises(InterventionError, match="no counterpart in the source"):
        patch(lm, multimodal, text_only, layers=[0], site="all")
    with pytest.raises(InterventionError, match="unknown patch site 'pixels'"):
        patch(lm, multimodal, text_only, layers=[0], site="pixels")
    # the answer position always corresponds across modalities
    out = patch(lm, multimodal, text_only, layers=[0], site="answer")
    assert out[0].shape[0] == 2
