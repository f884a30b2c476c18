"""modprobe.finetune.adversarial on every supported family's tiny model.

Checks: the perturbation lands only on the irrelevant modality's merged embeddings (the
rest bit-identical), stays in its ball, raises the loss, leaves the model's own position
ids alone (Qwen-VL's 3-D rotary positions included) and is kept in float32.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import modprobe
from modprobe.finetune.adversarial import (
    AdversarialConfig,
    EmbeddingPerturbation,
    adversarial_delta,
    adversarial_loss,
    irrelevant_mask,
    irrelevant_spans,
    random_start,
)
from modprobe.finetune.answer import answer_logits, answer_loss
from modprobe.spans import SPAN_NAMES
from modprobe.testing.images import noise_image

#: The description is the relevant modality, so the image is perturbed. ("text" until a
#: separate "context" span exists; then "context".)
RELEVANT = "context" if "context" in SPAN_NAMES else "text"


def _batch(lm: Any) -> dict[str, torch.Tensor]:
    """Two rows with images of different sizes and lengths: padding on one of them."""
    return lm.encode([
        modprobe.Prompt("What color is the circle ?", context="The circle is red .",
                        images=[noise_image(0, (32, 32))]),
        modprobe.Prompt("What color ?", context="It is blue .", images=[noise_image(1, (64, 32))]),
    ])


def _targets(lm: Any) -> torch.Tensor:
    return torch.tensor(lm.tokenizer.convert_tokens_to_ids(["red", "blue"]))


def test_mask_covers_only_the_irrelevant_modality(family: str, tiny_model: Callable[..., Any]) -> None:
    lm = tiny_model(family)
    batch = _batch(lm)
    spans = lm.spans(batch)
    mask = irrelevant_mask(spans, [RELEVANT, RELEVANT])
    assert torch.equal(mask, spans.mask("image"))
    assert not bool((mask & spans.mask("pad")).any())
    rows = torch.arange(2)
    assert not bool(mask[rows, spans.answer_positions()].any())
    # the image is relevant: its tokens stay, and no template or question token is touched
    image_relevant = irrelevant_mask(spans, ["image", "image"])
    assert not bool((image_relevant & (spans.mask("image") | spans.mask("text"))).any())
    if "context" in SPAN_NAMES:  # the description's tokens, and only those, are perturbed
        assert torch.equal(image_relevant, spans.mask("context")) and bool(image_relevant.any())
    assert irrelevant_spans("text") == tuple(s for s in ("image", "video", "audio") if s in SPAN_NAMES)


def test_unmasked_positions_bit_identical_and_ball_respected(
        family: str, tiny_model: Callable[..., Any]) -> None:
    lm = tiny_model(family)
    batch, targets = _batch(lm), _targets(lm)
    mask = irrelevant_mask(lm.spans(batch), [RELEVANT, RELEVANT])
    for norm in ("linf", "l2"):
        config = AdversarialConfig(steps=2, norm=norm)
        delta, _ = adversarial_delta(lm, batch, targets, mask, config,
                                     generator=torch.Generator().manual_seed(0))
        assert delta.dtype == torch.float32 and not delta.requires_grad
        assert float(delta[~mask].abs().max()) == 0.0
        eps32 = float(torch.tensor(config.eps, dtype=torch.float32))  # the ball in float32
        if norm == "linf":
            assert float(delta.abs().max()) <= eps32
        else:
            assert float(delta.flatten(1).norm(dim=1).max()) <= config.eps * (1 + 1e-5)
        assert float(delta[mask].abs().max()) > 0.1 * config.eps / (1 if norm == "linf" else 100)
        with torch.no_grad(), EmbeddingPerturbation(lm, mask, delta, record=True) as rec:
            lm.module(**batch)
        assert rec.clean is not None and rec.perturbed is not None
        keep = ~mask
        assert torch.equal(rec.perturbed[keep], rec.clean[keep])  # bit for bit
        assert torch.equal(rec.perturbed[mask], rec.clean[mask] + delta[mask])


def test_ascent_raises_the_loss(family: str, tiny_model: Callable[..., Any]) -> None:
    lm = tiny_model(family)
    batch, targets = _batch(lm), _targets(lm)
    with torch.no_grad():
        clean = float(answer_loss(answer_logits(lm, batch), targets))
    result = adversarial_loss(lm, batch, targets, [RELEVANT, RELEVANT],
                              AdversarialConfig(steps=2), generator=torch.Generator().manual_seed(1))
    start = result.ascent_losses[0]
    after = float(result.loss.detach())
    assert len(result.ascent_losses) == 2
    assert after >= start and after > clean, (clean, result.ascent_losses, after)
    assert result.loss.requires_grad
    # the direction matters: the opposite perturbation lowers the loss instead
    with torch.no_grad(), EmbeddingPerturbation(lm, result.mask, -result.delta):
        descended = float(answer_loss(answer_logits(lm, batch), targets))
    assert descended < clean < after


def test_positions_are_the_clean_forwards(family: str, tiny_model: Callable[..., Any]) -> None:
    """The decoder stack gets the same position ids as in the clean forward (3-D for
    Qwen-VL), and a zero perturbation gives the clean logits exactly."""
    lm = tiny_model(family)
    batch = _batch(lm)
    mask = irrelevant_mask(lm.spans(batch), [RELEVANT, RELEVANT])
    zero = torch.zeros(*mask.shape, lm.module.get_input_embeddings().weight.shape[1])
    with torch.no_grad():
        clean = answer_logits(lm, batch)
        with EmbeddingPerturbation(lm, torch.zeros_like(mask), zero, record=True) as plain:
            answer_logits(lm, batch)
        with EmbeddingPerturbation(lm, mask, zero + 1e-3, record=True) as shifted:
            moved = answer_logits(lm, batch)
        with EmbeddingPerturbation(lm, mask, zero):
            same = answer_logits(lm, batch)
    assert torch.equal(same, clean)
    assert not torch.equal(moved, clean)
    if plain.position_ids is not None or shifted.position_ids is not None:
        assert torch.equal(plain.position_ids, shifted.position_ids)
    if family.startswith("qwen"):
        pos = shifted.position_ids
        assert pos is not None and pos.dim() == 3, "Qwen-VL's M-RoPE positions are 3-D"
        rows_of_image = mask[0]
        # image tokens carry 2-D grid positions: height and width ids differ across them
        assert len(set(pos[1, 0, rows_of_image].tolist())) > 1 or len(set(pos[-1, 0, rows_of_image].tolist())) > 1


def test_noise_stays_float32_under_bf16(tiny_dir: Callable[..., Path]) -> None:
    lm = modprobe.load(tiny_dir("llava"), dtype="float32", device="cpu")
    batch, targets = _batch(lm), _targets(lm)
    mask = irrelevant_mask(lm.spans(batch), [RELEVANT, RELEVANT])
    config = AdversarialConfig(steps=1, eps=1e-3)
    # float32 weights under bf16 autocast: embeddings stay float32, the 1e-3 survives
    with torch.autocast("cpu", dtype=torch.bfloat16):
        delta, _ = adversarial_delta(lm, batch, targets, mask, config,
                                     generator=torch.Generator().manual_seed(0))
        with torch.no_grad(), EmbeddingPerturbation(lm, mask, delta, record=True) as rec:
            lm.module(**batch)
    assert delta.dtype == torch.float32 and rec.perturbed.dtype == torch.float32
    assert torch.equal(rec.perturbed[mask], rec.clean[mask] + delta[mask])
    # bf16 weights: the sum is rounded to bf16, and the user is told
    lm.module.to(torch.bfloat16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        delta16, _ = adversarial_delta(lm, batch, targets, mask, config,
                                       generator=torch.Generator().manual_seed(0))
    assert delta16.dtype == torch.float32
    assert any("rounds away" in str(w.message) for w in caught)


def test_random_start_is_small_and_seeded() -> None:
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[:, 2:5] = True
    config = AdversarialConfig(eps=1e-3, init_scale=0.5)
    a = random_start(mask, 16, config, torch.Generator().manual_seed(3))
    b = random_start(mask, 16, config, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and float(a[~mask].abs().max()) == 0.0
    assert 0 < float(a.abs().max()) <= float(torch.tensor(1e-3))
    l2 = random_start(mask, 16, AdversarialConfig(norm="l2", eps=1e-3, init_scale=0.5),
                      torch.Generator().manual_seed(3))
    assert torch.allclose(l2.flatten(1).norm(dim=1), torch.full((2,), 5e-4))
    with pytest.raises(ValueError, match="norm"):
        AdversarialConfig(norm="l1")
    with pytest.raises(ValueError, match="eps"):
        AdversarialConfig(eps=0.0)


# --------------------------------------------------------------------------- generic path

@pytest.fixture(scope="module")
def generic_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    from modprobe.testing.families import TINY_FAMILIES, build_family, load_family

    cache: dict[str, Any] = {}

    def make(name: str) -> Any:
        if name not in cache:
            spec = TINY_FAMILIES[name]
            folder = None if spec.stand_in else build_family(
                name, tmp_path_factory.mktemp(f"adv-{name}"))
            cache[name] = load_family(name, spec.attn_implementation, folder=folder)
        return cache[name]

    return make


def _generic_families() -> list[str]:
    """The generic-path families whose own forward runs in the installed transformers."""
    from modprobe.testing.families import TINY_FAMILIES

    return [name for name, spec in TINY_FAMILIES.items() if not spec.upstream_error]


@pytest.mark.parametrize("name", _generic_families())
def test_generic_families(name: str, generic_model: Callable[[str], Any]) -> None:
    """Families reached through the generic adapter: exact where features are merged into
    the sequence, a clear refusal where they come through cross-attention (Mllama)."""
    from modprobe.finetune import LossConfig, TrainBatch, check_batch

    lm = generic_model(name)
    # the image is perturbed (RELEVANT is the description); no description is needed for that
    batch = lm.encode([
        modprobe.Prompt("What color is the circle ?", images=[noise_image(0, (32, 32))]),
        modprobe.Prompt("What color ?", images=[noise_image(1, (32, 32))]),
    ])
    targets = _targets(lm)
    if getattr(lm.adapter.language_config(lm.config), "cross_attention_layers", None):
        with pytest.raises(ValueError, match="cross-attention"):
            check_batch(lm, TrainBatch(batch, targets, [RELEVANT] * 2), LossConfig(adversarial=1.0))
        with pytest.raises(RuntimeError, match="no merged embeddings to perturb"):
            adversarial_loss(lm, batch, targets, [RELEVANT] * 2)
        return
    result = adversarial_loss(lm, batch, targets, [RELEVANT] * 2, AdversarialConfig(steps=2),
                              generator=torch.Generator().manual_seed(1))
    assert bool(result.mask.any())
    with torch.no_grad():
        clean_logits = answer_logits(lm, batch)
        with EmbeddingPerturbation(lm, result.mask, result.delta, record=True) as rec:
            answer_logits(lm, batch)
        with EmbeddingPerturbation(lm, result.mask, torch.zeros_like(result.delta)):
            same = answer_logits(lm, batch)
    assert torch.equal(same, clean_logits)
    assert torch.equal(rec.perturbed[~result.mask], rec.clean[~result.mask])
    clean = float(answer_loss(clean_logits, targets))
    assert float(result.loss.detach()) >= result.ascent_losses[0]
    assert float(result.loss.detach()) > clean
