"""Adapters on the tiny model of every family: parts, prompts, conditions, errors, generic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from modprobe import ADAPTERS, AdapterError, Prompt, adapter_for
from modprobe.adapters import CONDITIONS, generic_adapter
from modprobe.testing.tiny import NUM_QUERY_TOKENS, TEXT_DEFAULTS

QUESTION = "What color is the circle? Please answer with one word."
CONTEXT = "The circle is blue."


def _forward(lm, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return lm.module(**lm.adapter.model_inputs(batch, lm.module)).logits


def test_each_family_gets_its_dedicated_adapter(family, tiny_model) -> None:
    lm = tiny_model(family)
    assert lm.adapter is ADAPTERS[family]
    assert adapter_for(lm.model) is ADAPTERS[family], "an nnsight wrapper resolves the same"


def test_parts_resolve_on_module_and_envoy(family, tiny_model) -> None:
    lm = tiny_model(family)
    adapter, module = lm.adapter, lm.module
    layers = adapter.decoder_layers(module)
    assert isinstance(layers, torch.nn.ModuleList)
    assert len(layers) == adapter.num_layers(lm.model) == TEXT_DEFAULTS["num_hidden_layers"]
    assert adapter.lm_head(module) is module.get_output_embeddings()
    assert adapter.norm(module).weight.shape == (TEXT_DEFAULTS["hidden_size"],)
    assert adapter.attention_module(module, 1) is getattr(layers[1], adapter.attention)
    # the same paths work on the nnsight wrapper
    assert adapter.lm_head(lm.model)._module is adapter.lm_head(module)
    assert adapter.norm(lm.model)._module is adapter.norm(module)
    assert adapter.attention_module(lm.model, 1)._module is adapter.attention_module(module, 1)


def test_language_config_has_gqa_heads(family, tiny_model) -> None:
    text = tiny_model(family).adapter.language_config(tiny_model(family).config)
    assert text.num_attention_heads == TEXT_DEFAULTS["num_attention_heads"]
    assert text.num_key_value_heads == TEXT_DEFAULTS["num_key_value_heads"]
    assert text.hidden_size == TEXT_DEFAULTS["hidden_size"]
    assert text.num_hidden_layers == TEXT_DEFAULTS["num_hidden_layers"]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_conditions_encode_and_run(family, tiny_model, images, condition) -> None:
    lm = tiny_model(family)
    prompts = [Prompt.for_condition(condition, QUESTION, CONTEXT, images["red_square"]),
               Prompt.for_condition(condition, "Which color?", "It is red.", images["red_square"])]
    batch = lm.encode(prompts)
    spans = lm.spans(batch)
    logits = _forward(lm, batch)
    assert logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(logits).all()
    has_image = spans.counts()["image"]
    assert all(n > 0 for n in has_image) if condition != "text" else has_image == [0, 0]
    text = lm.tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True)
    assert ("red" in text) == (condition != "vision"), "context only outside the vision condition"


def test_prompt_for_condition_checks_its_parts(images) -> None:
    with pytest.raises(ValueError, match="needs an image"):
        Prompt.for_condition("multi", QUESTION, CONTEXT, None)
    with pytest.raises(ValueError, match="needs a textual context"):
        Prompt.for_condition("text", QUESTION, None, images["red_square"])
    with pytest.raises(ValueError, match="unknown condition"):
        Prompt.for_condition("audio", QUESTION, CONTEXT, images["red_square"])  # type: ignore[arg-type]
    vision = Prompt.for_condition("vision", QUESTION, CONTEXT, images["red_square"])
    assert vision.context is None and len(vision.images) == 1
    text = Prompt.for_condition("text", QUESTION, CONTEXT, images["red_square"])
    assert text.images == [] and text.text == f"{CONTEXT}\n{QUESTION}"


@pytest.mark.parametrize("family", ["llava", "llava_next", "qwen2_vl", "qwen2_5_vl"])
def test_chat_template_shape(family, tiny_model, images) -> None:
    lm = tiny_model(family)
    text = lm.adapter.prompt_text(lm.processor, Prompt(QUESTION, images=[images["red_square"]]))
    expected = {
        "llava": f"USER: <image>\n{QUESTION} ASSISTANT:",
        "llava_next": f"[INST] <image>\n{QUESTION} [/INST]",
        "qwen2_vl": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                    f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n",
    }
    expected["qwen2_5_vl"] = expected["qwen2_vl"]
    assert text.endswith(expected[family])


@pytest.mark.parametrize("family", ["llava_next", "qwen2_vl", "qwen2_5_vl"])
def test_image_size_changes_token_count(family, tiny_model, images) -> None:
    lm = tiny_model(family)
    prompts = [Prompt(QUESTION, images=[images["red_square"]]),
               Prompt(QUESTION, images=[images["purple_big"]]),
               Prompt(QUESTION, images=[images["blue_wide"]])]
    batch = lm.encode(prompts)
    spans = lm.spans(batch)
    counts = spans.counts()["image"]
    assert len(set(counts)) == 3, f"three image sizes give three token counts, got {counts}"
    image_id = lm.adapter.token_ids(lm.config)["image"]
    assert torch.equal(spans.mask("image"), batch["input_ids"] == image_id)
    for row in range(3):  # one contiguous image run per row, text around it
        runs = [name for name, _, _ in spans.ranges(row)]
        assert runs.count("image") == 1 and runs[-1] == "text"
    assert torch.isfinite(_forward(lm, batch)).all()


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_mixed_batch_with_and_without_image(family, tiny_model, images) -> None:
    lm = tiny_model(family)
    batch = lm.encode([Prompt(QUESTION, images=[images["red_square"]]),
                       Prompt(QUESTION, context=CONTEXT)])
    assert spans_image_counts(lm, batch)[1] == 0 < spans_image_counts(lm, batch)[0]
    assert torch.isfinite(_forward(lm, batch)).all()


def spans_image_counts(lm, batch: dict) -> list[int]:
    return lm.spans(batch).counts()["image"]


def test_instructblip_rejects_mixed_batches(tiny_model, images) -> None:
    lm = tiny_model("instructblip")
    with pytest.raises(AdapterError, match="cannot batch prompts with and without images"):
        lm.encode([Prompt(QUESTION, images=[images["red_square"]]), Prompt(QUESTION, context=CONTEXT)])


def test_instructblip_text_only_batch_never_sees_pixels(tiny_model, images) -> None:
    lm = tiny_model("instructblip")
    batch = lm.encode([Prompt(QUESTION, context=CONTEXT)])
    assert lm.spans(batch).counts()["image"] == [0]
    zeros = _forward(lm, batch)
    noisy = dict(batch, pixel_values=torch.randn_like(batch["pixel_values"]))
    assert torch.equal(zeros, _forward(lm, noisy)), "no image token, so the pixels reach nothing"
    with_image = lm.encode([Prompt(QUESTION, images=[images["red_square"]])])
    assert lm.spans(with_image).counts()["image"] == [NUM_QUERY_TOKENS]


# ----------------------------------------------------------------------------- errors


def test_placeholder_in_text_is_an_adapter_error(family, tiny_model, images) -> None:
    lm = tiny_model(family)
    placeholder = lm.processor.image_token
    placeholder = getattr(placeholder, "content", placeholder)
    prompt = Prompt(f"What color is {placeholder} this?", images=[images["red_square"]])
    with pytest.raises(AdapterError, match="placeholder"):
        lm.encode([prompt])


def test_two_images_on_instructblip_is_an_adapter_error(tiny_model, images) -> None:
    lm = tiny_model("instructblip")
    with pytest.raises(AdapterError, match="at most one image"):
        lm.encode([Prompt(QUESTION, images=[images["red_square"], images["blue_wide"]])])


def test_config_without_image_token_is_an_adapter_error() -> None:
    with pytest.raises(AdapterError, match="image_token_id"):
        ADAPTERS["llava"].token_ids(SimpleNamespace(text_config=None))


def test_wrong_paths_are_an_adapter_error(tiny_model) -> None:
    lm = tiny_model("llava")
    with pytest.raises(AdapterError, match="no submodule 'language_model.model.layers'"):
        ADAPTERS["instructblip"].decoder_layers(lm.module)


def test_encode_rejects_bad_arguments(tiny_model) -> None:
    lm = tiny_model("llava")
    with pytest.raises(ValueError, match="at least one prompt"):
        lm.encode([])
    with pytest.raises(ValueError, match="padding_side"):
        lm.encode([Prompt(QUESTION)], padding_side="middle")


# ----------------------------------------------------------------------------- generic


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "instructblip"])
def test_generic_adapter_matches_dedicated(family, tiny_model, images) -> None:
    lm = tiny_model(family)
    dedicated, generic = lm.adapter, generic_adapter(lm.model, lm.processor)
    assert generic.family == f"generic:{lm.config.model_type}"
    assert (generic.layers, generic.final_norm, generic.unembed, generic.attention) == (
        dedicated.layers, dedicated.final_norm, dedicated.unembed, dedicated.attention)
    assert (generic.chat_template, generic.mixed_batches, generic.requires_pixel_values) == (
        dedicated.chat_template, dedicated.mixed_batches, dedicated.requires_pixel_values)
    assert generic.token_ids(lm.config)["image"] == dedicated.token_ids(lm.config)["image"]
    assert generic.decoder_layers(lm.module) is dedicated.decoder_layers(lm.module)
    assert generic.language_config(lm.config) is dedicated.language_config(lm.config)
    prompts = [Prompt(QUESTION, images=[images["red_square"]]),
               Prompt("Which color?", context=CONTEXT, images=[images["red_square"]])]
    batch_dedicated = dedicated.encode(lm.processor, prompts)
    batch_generic = generic.encode(lm.processor, prompts)
    assert torch.equal(batch_dedicated["input_ids"], batch_generic["input_ids"])
    assert torch.equal(
        dedicated.spans(lm.config, batch_dedicated["input_ids"], batch_dedicated["attention_mask"]).codes,
        generic.spans(lm.config, batch_generic["input_ids"], batch_generic["attention_mask"]).codes)


def test_generic_adapter_rejects_model_without_image_token() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    text_only = LlamaForCausalLM(LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(AdapterError, match="no image_token_id"):
        generic_adapter(text_only)
    with pytest.raises(AdapterError, match="no image_token_id"):
        adapter_for(text_only)
