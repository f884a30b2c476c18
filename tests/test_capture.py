"""The capture engine on tiny models of every family: exactness invariants.

Each family's tiny model is loaded twice from one folder, under SDPA (what the capture
runs on) and eager (whose ``output_attentions`` is the reference), and both copies get
the same sharpened q/k projections so that attention rows are peaked (see
:func:`modprobe.capture.reference.sharpen_attention`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import modprobe
from modprobe.capture import CandidateError, Capture, capture
from modprobe.capture.reference import eager_reference, sharpen_attention, user_reference
from modprobe.capture.trace import forward_kwargs
from modprobe.spans import SPAN_NAMES
from modprobe.testing import COLOR_WORDS
from modprobe.testing.images import noise_image

TOL = 1e-5



def _prompts() -> list[modprobe.Prompt]:
    """Two prompts of different lengths and image sizes, so the batch is padded."""
    return [
        modprobe.Prompt(
            "What color is the circle ? Please answer with one word .",
            context="The circle is red .",
            images=[noise_image(0, (32, 32))],
        ),
        modprobe.Prompt("What color is it ?", images=[noise_image(1, (64, 32))]),
    ]




def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def test_lens_last_layer_equals_final_logits(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    batch = lm.encode(_prompts())
    cap = capture(lm, batch, keep_lens_logits=True)
    assert cap.lens_logits is not None
    assert _maxdiff(cap.lens_logits[:, -1], cap.final_logits) <= TOL
    # the trace reads the model without changing it: same logits as a plain forward
    with torch.no_grad():
        plain = lm.module(**forward_kwargs(lm, batch)).logits
    rows = torch.arange(2)
    assert _maxdiff(plain[rows, cap.answer_positions], cap.final_logits) <= TOL
    assert torch.allclose(cap.lens_entropy[:, -1], cap.final_entropy, atol=TOL)


def _row_ids(batch: dict, row: int) -> torch.Tensor:
    return batch["input_ids"][row][batch["attention_mask"][row].bool()]


def test_attention_mass_matches_eager(pair: tuple[Any, Any]) -> None:
    """The padded batch's capture equals each prompt run alone through the user's forward."""
    lm, eager = pair
    batch = lm.encode(_prompts())
    cap = capture(lm, batch, keep_lens_logits=True)
    with torch.no_grad():
        ref, ids = user_reference(eager, _prompts())
    for row, row_ids in enumerate(ids):
        assert torch.equal(_row_ids(batch, row), row_ids), "the processor's own token ids"
    assert _maxdiff(cap.final_logits, ref.final_logits) <= TOL
    mass = cap.attention_mass
    assert mass is not None and mass.shape == ref.attention_mass.shape
    assert _maxdiff(mass, ref.attention_mass) <= TOL
    assert _maxdiff(mass.sum(-1), torch.ones(mass.shape[:-1])) <= TOL
    # the lens matches transformers' hidden states (final norm on all but the last)
    assert _maxdiff(cap.lens_logits, ref.lens_logits) <= TOL
    # the description of row 0 gets attention; row 1 has none, so exactly zero
    context = SPAN_NAMES.index("context")
    assert float(mass[0, ..., context].min()) > 0
    assert float(mass[1, ..., context].abs().max()) == 0
    # discriminating: mass is far from "proportional to the number of tokens"
    counts = cap.spans.one_hot().sum(1)
    share = counts / counts.sum(-1, keepdim=True)
    assert float((mass - share[:, None, None]).abs().max()) > 0.05


def test_left_padded_batch_equals_rows_alone(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    prompts = _prompts()
    batch = lm.encode(prompts)
    assert bool((batch["attention_mask"] == 0).any()), "the batch should need padding"
    cands = list(COLOR_WORDS[:3])
    together = capture(lm, batch, candidates=cands)
    for i, prompt in enumerate(prompts):
        alone = capture(lm, [prompt], candidates=cands)
        for name in ("final_logits", "lens_entropy", "lens_candidate_logits", "attention_mass"):
            diff = _maxdiff(getattr(together, name)[i], getattr(alone, name)[0])
            assert diff <= TOL, f"row {i} {name} differs by {diff:.2e} when batched"


def test_two_rows_seven_candidates(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    cands: list[int | str] = [*COLOR_WORDS, lm.tokenizer.convert_tokens_to_ids("circle")]
    cap = capture(lm, _prompts(), candidates=cands, top_k=4)
    n_layers = lm.adapter.num_layers(lm.module)
    heads = lm.adapter.language_config(lm.config).num_attention_heads
    assert isinstance(cap, Capture)
    assert cap.lens_candidate_logits.shape == (2, n_layers, 7)
    assert cap.lens_candidate_probs.shape == (2, n_layers, 7)
    assert cap.lens_topk_ids.shape == cap.lens_topk_probs.shape == (2, n_layers, 4)
    assert cap.lens_entropy.shape == (2, n_layers)
    assert cap.final_candidate_logits.shape == (2, 7)
    assert cap.attention_mass.shape == (2, n_layers, heads, len(SPAN_NAMES))
    assert cap.candidates.labels[:6] == COLOR_WORDS
    assert len(set(cap.candidates.ids)) == 7
    # probabilities are full-vocabulary ones: the candidates' share is below one
    assert float(cap.lens_candidate_probs.sum(-1).max()) < 1
    frames = cap.to_frames()
    assert len(frames.lens) == 2 * n_layers
    assert {
        "row",
        "layer",
        "entropy",
        "top1_id",
        "top1_token",
        "top1_prob",
        "logit_red",
        "prob_red",
        f"logit_#{cands[-1]}",
    } <= set(frames.lens.columns)
    assert len(frames.attention) == 2 * n_layers * heads * len(SPAN_NAMES)
    sums = frames.attention.groupby(["row", "layer", "head"], observed=True)["mass"].sum()
    assert np.allclose(sums.to_numpy(), 1, atol=TOL)
    assert list(frames.final["position"]) == cap.answer_positions.tolist()
    # image mass is positive (every prompt has an image) and video/audio are absent
    assert float(cap.attention_mass[..., 0].min()) > 0
    assert float(cap.attention_mass[..., 1:3].abs().max()) == 0


@pytest.mark.parametrize(("adapter", "padding_side"),
                         [("dedicated", "left"), ("dedicated", "right"), ("generic", "right")])
def test_context_mass_matches_eager(pair: tuple[Any, Any], padding_side: str,
                                    adapter: str) -> None:
    """Context vs other text: the padded batch's capture (SDPA) equals each prompt alone
    through the user's eager forward; multi rows of different lengths, text-only rows."""
    from dataclasses import replace

    from modprobe.adapters import generic_adapter

    lm, eager = pair
    if adapter == "generic":
        lm = replace(lm, adapter=generic_adapter(lm.model, lm.processor))
    multi = [*_prompts(), modprobe.Prompt("What color ?", context="It is a blue square .",
                                          images=[noise_image(2, (32, 32))])]
    text_only = [modprobe.Prompt(p.question, context=p.context) for p in multi]
    for prompts in (multi, text_only):
        batch = lm.encode(prompts, padding_side=padding_side)
        cap = capture(lm, batch)
        with torch.no_grad():
            ref, _ = user_reference(eager, prompts)  # each prompt alone, as a user runs it
        context, text = SPAN_NAMES.index("context"), SPAN_NAMES.index("text")
        assert _maxdiff(cap.attention_mass[..., context], ref.attention_mass[..., context]) <= TOL
        assert _maxdiff(cap.attention_mass[..., text], ref.attention_mass[..., text]) <= TOL
        has_context = [bool(p.context) for p in prompts]
        for row, has in enumerate(has_context):
            row_mass = cap.attention_mass[row, ..., context]
            assert (float(row_mass.min()) > 0) if has else float(row_mass.abs().max()) == 0
        # total text = context + text; with no image everything is text
        if not prompts[0].images:
            total = cap.attention_mass[..., context] + cap.attention_mass[..., text]
            assert _maxdiff(total, torch.ones_like(total)) <= TOL


@pytest.mark.parametrize("family", ["llava"])  # one family is enough
def test_candidate_collision_names_both(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    with pytest.raises(CandidateError, match=r"'red' and 'red circle'"):
        capture(lm, _prompts(), candidates=["red", "blue", "red circle"])


@pytest.mark.parametrize("family", ["qwen2_vl"])  # one family is enough
def test_other_query_positions(pair: tuple[Any, Any]) -> None:
    lm, eager = pair
    batch = lm.encode(_prompts())
    spans = lm.spans(batch)
    pos = spans.answer_positions() - 2
    cap = capture(lm, batch, positions=pos, keep_lens_logits=True)
    with torch.no_grad():
        ref, _ = user_reference(eager, _prompts(), back=2)
    assert _maxdiff(cap.attention_mass, ref.attention_mass) <= TOL
    assert _maxdiff(cap.lens_logits, ref.lens_logits) <= TOL
    assert _maxdiff(cap.final_logits, ref.final_logits) <= TOL
    with pytest.raises(ValueError, match="padding"):
        capture(lm, batch, positions=[0, 0])


def test_sliding_window_layers(tmp_path: Any) -> None:
    """Qwen2 sliding-window layers (``layer_types``): the window is honoured, as in eager."""
    from modprobe.testing import tiny_config, tiny_model, tiny_processor, tiny_tokenizer

    tokenizer = tiny_tokenizer("qwen2_vl")
    config = tiny_config("qwen2_vl", tokenizer)
    text = config.text_config
    text.use_sliding_window, text.sliding_window = True, 8
    text.layer_types = ["full_attention", "sliding_attention", "sliding_attention"]
    tiny_model("qwen2_vl", config).save_pretrained(tmp_path)
    tiny_processor("qwen2_vl", tokenizer).save_pretrained(tmp_path)
    lm, eager = (
        sharpen_attention(
            modprobe.load(tmp_path, dtype="float32", device="cpu", attn_implementation=impl)
        )
        for impl in ("sdpa", "eager")
    )
    batch = lm.encode(_prompts())
    cap = capture(lm, batch)
    with torch.no_grad():
        ref = eager_reference(eager, batch, cap.spans, cap.answer_positions)
    assert _maxdiff(cap.attention_mass, ref.attention_mass) <= TOL
    # the image lies more than 8 tokens before the answer: only the full layer sees it
    assert float(cap.attention_mass[:, 0, :, 0].min()) > 0
    assert float(cap.attention_mass[:, 1:, :, 0].abs().max()) == 0


@pytest.mark.parametrize("family", ["llava_next"])  # one family is enough
def test_halves_can_be_skipped(pair: tuple[Any, Any]) -> None:
    lm, _ = pair
    full = capture(lm, _prompts(), candidates=["red"])
    no_attn = capture(lm, _prompts(), candidates=["red"], attention=False)
    no_lens = capture(lm, _prompts(), candidates=["red"], lens=False)
    assert no_attn.attention_mass is None and no_lens.lens_entropy is None
    assert _maxdiff(no_attn.lens_candidate_logits, full.lens_candidate_logits) <= TOL
    assert _maxdiff(no_lens.attention_mass, full.attention_mass) <= TOL
    assert len(no_lens.to_frames().lens) == 0 and len(no_attn.to_frames().attention) == 0
