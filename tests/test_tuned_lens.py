"""The tuned lens: identity translators are the logit lens; training lowers held-out KL."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import modprobe
from modprobe.capture import CaptureOptionError, capture
from modprobe.capture.tuned import (
    TranslatorError,
    Translators,
    collect_states,
    layer_kl,
    train_translators,
    tuned_logits,
)
from modprobe.testing import COLOR_WORDS
from modprobe.testing.images import noise_image


def _prompts(start: int, n: int) -> list[modprobe.Prompt]:
    words = list(COLOR_WORDS)
    return [modprobe.Prompt(f"What color is the {'circle' if i % 2 else 'square'} ?",
                            context=f"It is {words[i % len(words)]} ." if i % 3 else None,
                            images=[noise_image(i, (32, 32))]) for i in range(start, start + n)]


def test_identity_translators_are_the_logit_lens(family: str, tiny_model: Any) -> None:
    lm = tiny_model(family)
    batch = lm.encode(_prompts(0, 2))
    cap = capture(lm, batch, lens="tuned", translators=Translators.identity(lm),
                  keep_lens_logits=True, candidates=list(COLOR_WORDS[:3]))
    assert cap.tuned_logits is not None and cap.lens_logits is not None
    assert torch.equal(cap.tuned_logits, cap.lens_logits)
    assert torch.equal(cap.tuned_entropy, cap.lens_entropy)
    assert torch.equal(cap.tuned_candidate_logits, cap.lens_candidate_logits)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_training_lowers_held_out_kl(family: str, tiny_model: Any) -> None:
    lm = tiny_model(family)
    train_h, train_f = collect_states(lm, lm.encode(_prompts(0, 24)))
    test_h, test_f = collect_states(lm, lm.encode(_prompts(100, 12)))
    norm, unembed = lm.adapter.norm(lm.module), lm.adapter.lm_head(lm.module)
    identity = Translators.identity(lm)
    trained = train_translators(lm, train_h, train_f, steps=150, lr=3e-3)
    with torch.no_grad():
        before = layer_kl(tuned_logits(test_h, identity, norm, unembed), test_f)
        after = layer_kl(tuned_logits(test_h, trained, norm, unembed), test_f)
    n = before.shape[0]
    # the last layer's lens is already the model's output (KL 0 before and after)
    assert float(before[-1]) < 1e-6 and float(after[-1]) < 1e-4
    assert bool((after[: n - 1] < before[: n - 1]).all()), (before, after)
    assert float(after[: n - 1].sum()) < 0.8 * float(before[: n - 1].sum())


@pytest.mark.parametrize("family", ["llava"])
def test_translators_file_round_trip_and_refusals(family: str, tiny_model: Any,
                                                  tmp_path: Any) -> None:
    lm, other = tiny_model(family), tiny_model(family, seed=1)
    h, f = collect_states(lm, lm.encode(_prompts(0, 4)))
    trained = train_translators(lm, h, f, steps=3)
    path = trained.save(tmp_path / "tuned_lens.safetensors")
    back = Translators.load(tmp_path, lm)
    assert torch.equal(back.weight, trained.weight) and torch.equal(back.bias, trained.bias)
    with pytest.raises(TranslatorError, match="already exists"):
        trained.save(path)
    with pytest.raises(TranslatorError, match="trained on another model"):
        Translators.load(path, other)
    with pytest.raises(TranslatorError, match="trained on another model"):
        capture(other, _prompts(0, 1), lens="tuned", translators=back)
    with pytest.raises(CaptureOptionError, match="needs translators"):
        capture(lm, _prompts(0, 1), lens="tuned")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tuned_lens.safetensors").write_bytes(b"not a file")
    with pytest.raises(TranslatorError, match="not a modprobe translators file"):
        Translators.load(tmp_path / "bad", lm)
