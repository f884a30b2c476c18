"""modprobe.finetune.step and .answer: the logits that predict the answer, and one step's terms.

The planted model: attention and MLP outputs are zeroed, so the residual stream at a
position is a function of that position's token alone, and ``lm_head`` is set so that the
last prompt token (``:`` of ``ASSISTANT:``) predicts ``red`` while the answer token
``red`` itself predicts ``blue``. Reading the logits one position late (at the answer
token, as the interference paper's public code does) then gives a different, wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import modprobe
from modprobe.capture import capture
from modprobe.finetune import (
    LossConfig,
    TrainBatch,
    answer_logits,
    answer_loss,
    check_batch,
    compute_losses,
)
from modprobe.finetune.adversarial import decoder_stack
from modprobe.testing.images import noise_image

PROMPTS = [
    modprobe.Prompt("What color is the circle ?", context="The circle is blue .",
                    images=[noise_image(0, (32, 32))]),
    modprobe.Prompt("What color ?", images=[noise_image(1, (32, 32))]),
]


def _ids(lm: Any, *words: str) -> torch.Tensor:
    return torch.tensor(lm.tokenizer.convert_tokens_to_ids(list(words)))


def _teacher_forced(batch: dict[str, torch.Tensor], answer: torch.Tensor) -> dict[str, torch.Tensor]:
    """The prompt with the answer token appended (how a causal LM is trained on it)."""
    out = dict(batch)
    out["input_ids"] = torch.cat([batch["input_ids"], answer.view(-1, 1)], dim=1)
    out["attention_mask"] = torch.cat(
        [batch["attention_mask"], torch.ones_like(answer).view(-1, 1)], dim=1)
    return out


@pytest.fixture(scope="module")
def planted(tiny_dir: Callable[..., Path]) -> Any:
    lm = modprobe.load(tiny_dir("llava"), dtype="float32", device="cpu")
    module = lm.module
    red, blue = _ids(lm, "red", "blue").tolist()
    with torch.no_grad():
        for layer in lm.adapter.decoder_layers(module):
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        batch = lm.encode(PROMPTS[:1])
        forced = _teacher_forced(batch, torch.tensor([red]))
        hidden = module(**forced, output_hidden_states=True).hidden_states[-1][0]  # normed
        # rows of lm_head for red and blue with h_last . w_red = 10, h_answer . w_red = 0, ...
        pair = torch.stack([hidden[-2], hidden[-1]])  # last prompt token, answer token
        rows = 10.0 * torch.linalg.pinv(pair).T
        head = lm.adapter.lm_head(module).weight
        head.zero_()
        head[red], head[blue] = rows[0], rows[1]
    return lm


def test_answer_logits_predict_the_answer_and_one_late_does_not(planted: Any) -> None:
    lm = planted
    red, blue = _ids(lm, "red", "blue").tolist()
    batch = lm.encode(PROMPTS)  # two rows of different lengths: left padding
    targets = torch.tensor([red, red])
    with torch.no_grad():
        logits = answer_logits(lm, batch)
        assert logits.argmax(-1).tolist() == [red, red]
        assert float(answer_loss(logits, targets)) < 0.02
        # one position late: the logits at the answer token predict the token after it
        forced = _teacher_forced(batch, targets)
        late = lm.module(**forced).logits[:, -1]
        assert late.argmax(-1).tolist() == [blue, blue]
        assert float(answer_loss(late.float(), targets)) > 5.0
        # the step's answer term reads the right position too
        terms = compute_losses(lm, TrainBatch(batch, targets, ["image", "image"]), None,
                               LossConfig())
        assert float(terms["answer"]) == pytest.approx(float(answer_loss(logits, targets)), rel=1e-6)
        # and so does the capture the calibration term rides on
        cap = capture(lm, batch, lens=False)
        assert torch.allclose(cap.final_logits, logits, atol=1e-5)


def test_right_padding_reads_each_rows_last_token(planted: Any) -> None:
    lm = planted
    left = lm.encode(PROMPTS)
    right = lm.encode(PROMPTS, padding_side="right")
    with torch.no_grad():
        assert torch.allclose(answer_logits(lm, right), answer_logits(lm, left), atol=1e-5)


@pytest.fixture(scope="module")
def organism() -> Any:
    return modprobe.load("organism", dtype="float32", device="cpu")


def _train_batch(lm: Any, prompts: list[modprobe.Prompt], relevant: list[str]) -> TrainBatch:
    return TrainBatch(lm.encode(prompts), _ids(lm, *(["red"] * len(prompts))), relevant)


def _count_stack_calls(lm: Any) -> tuple[list[int], Any]:
    calls = [0]

    def hook(*_: Any) -> None:
        calls[0] += 1

    return calls, decoder_stack(lm).register_forward_pre_hook(hook)


def test_terms_total_and_one_forward_per_batch(organism: Any) -> None:
    lm = organism
    clean = _train_batch(lm, PROMPTS, ["text", "text"])
    perturbed = _train_batch(lm, [modprobe.Prompt(p.question, context="It is green .",
                                                  images=p.images) for p in PROMPTS],
                             ["text", "text"])
    config = LossConfig(answer=1.0, calibration=0.5, consistency=0.25, adversarial=2.0,
                        calibration_kind="neg_log_mass", adv_steps=2)
    calls, handle = _count_stack_calls(lm)
    try:
        terms = compute_losses(lm, clean, perturbed, config, generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert set(terms) == {"loss", "answer", "calibration", "consistency", "adversarial"}
    total = sum(getattr(config, k) * terms[k] for k in ("answer", "calibration", "consistency",
                                                         "adversarial"))
    assert float(terms["loss"].detach()) == pytest.approx(float(total.detach()), rel=1e-6)
    # clean + perturbed forwards (calibration rides them), 2 ascent steps, 1 adversarial
    assert calls[0] == 2 + 2 + 1
    assert all(t.requires_grad for t in terms.values())

    only = compute_losses(lm, clean, None, LossConfig(answer=1.0))
    assert set(only) == {"loss", "answer"}


def test_calibration_rides_the_answer_forward(organism: Any) -> None:
    """With calibration on, the answer term is the same number with the same gradient."""
    lm = organism
    clean = _train_batch(lm, PROMPTS, ["image", "text"])
    params = [p for p in lm.module.parameters() if p.requires_grad][-6:]
    plain = compute_losses(lm, clean, None, LossConfig())["answer"]
    riding = compute_losses(lm, clean, None, LossConfig(calibration=1.0))["answer"]
    assert float(riding) == pytest.approx(float(plain), rel=1e-5)
    for a, b in zip(torch.autograd.grad(plain, params), torch.autograd.grad(riding, params)):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_a_step_lowers_each_term_it_optimises() -> None:
    lm = modprobe.load("organism", dtype="float32", device="cpu")  # its own copy: trained here
    clean = _train_batch(lm, PROMPTS, ["image", "image"])
    clean.targets = _ids(lm, "blue", "green")
    perturbed = _train_batch(lm, [modprobe.Prompt(p.question, context="It is green .",
                                                  images=p.images) for p in PROMPTS],
                             ["image", "image"])
    perturbed.targets = clean.targets
    config = LossConfig(answer=1.0, calibration=1.0, consistency=1.0, adversarial=1.0,
                        calibration_kind="neg_log_mass")
    optimizer = torch.optim.SGD(lm.adapter.decoder_layers(lm.module).parameters(), lr=0.02)
    before = {k: float(v) for k, v in compute_losses(lm, clean, perturbed, config).items()}
    for _ in range(3):
        optimizer.zero_grad()
        compute_losses(lm, clean, perturbed, config, generator=torch.Generator().manual_seed(0))["loss"].backward()
        optimizer.step()
    after = {k: float(v) for k, v in compute_losses(lm, clean, perturbed, config).items()}
    for name in ("loss", "answer", "calibration", "adversarial"):
        assert after[name] < before[name], (name, before[name], after[name])


def test_bad_batches_fail_before_any_step(organism: Any) -> None:
    lm = organism
    vision_only = _train_batch(lm, [modprobe.Prompt("What color ?", images=[noise_image(2, (32, 32))])],
                               ["image"])
    with pytest.raises(ValueError, match="perturbed batch"):
        compute_losses(lm, vision_only, None, LossConfig(consistency=1.0))
    clean = _train_batch(lm, PROMPTS, ["image", "image"])
    with pytest.raises(ValueError, match="pairs clean and perturbed rows"):
        compute_losses(lm, clean, vision_only, LossConfig(consistency=1.0))
    with pytest.raises(ValueError, match="relevant span 'video' has no tokens"):
        check_batch(lm, TrainBatch(clean.batch, clean.targets, ["image", "video"]),
                    LossConfig(calibration=1.0))
    with pytest.raises(ValueError, match="calibration_layers: \\[7\\] out of range; the model has 4"):
        check_batch(lm, clean, LossConfig(calibration=1.0, calibration_layers=[0, 7]))
    with pytest.raises(ValueError, match="unknown span"):
        check_batch(lm, TrainBatch(clean.batch, clean.targets, ["image", "picture"]), LossConfig())
    with pytest.raises(ValueError, match="calibration_over: unknown span 'picture'"):
        check_batch(lm, clean, LossConfig(calibration=1.0, calibration_over=["image", "picture"]))
    with pytest.raises(ValueError, match=r"calibration_over=\['text'\] leaves out the relevant "
                                         r"span\(s\) \['image'\]"):
        check_batch(lm, clean, LossConfig(calibration=1.0, calibration_over=["text"]))
    with pytest.raises(ValueError, match="one of each per row"):
        check_batch(lm, TrainBatch(clean.batch, clean.targets[:1], ["image", "image"]), LossConfig())
    with pytest.raises(ValueError, match="every loss weight is 0"):
        LossConfig(answer=0.0)
    with pytest.raises(ValueError, match="calibration_kind"):
        LossConfig(calibration_kind="kl")
    with pytest.raises(ValueError, match="adv_norm"):
        LossConfig(adv_norm="l1")
    check_batch(lm, clean, LossConfig(calibration=1.0, calibration_layers=[-1]))
