"""ModalitySpans, and each family's spans on real processor batches of its tiny model."""

from __future__ import annotations

import pytest
import torch

from modprobe import SPAN_NAMES, ModalitySpans, Prompt
from modprobe.spans import PAD_CODE, span_code

# ----------------------------------------------------------------------------- unit


def test_from_masks_codes_image_text_and_padding() -> None:
    attention = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    image = torch.tensor([[0, 0, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]]).bool()
    spans = ModalitySpans.from_masks(attention, image=image)
    img, txt = span_code("image"), span_code("text")
    assert spans.codes.tolist() == [
        [PAD_CODE, PAD_CODE, txt, img, img, txt],
        [img, txt, txt, txt, txt, txt],
    ]
    assert spans.counts() == {"image": [2, 1], "video": [0, 0], "audio": [0, 0],
                              "context": [0, 0], "text": [2, 5], "pad": [2, 0]}
    assert spans.ranges(0) == [("pad", 0, 2), ("text", 2, 3), ("image", 3, 5), ("text", 5, 6)]
    assert spans.describe(1) == "image[0:1] text[1:6]"


def test_context_mask_claims_its_tokens_and_text_is_the_rest() -> None:
    attention = torch.tensor([[0, 1, 1, 1, 1, 1]])
    image = torch.tensor([[0, 0, 1, 0, 0, 0]]).bool()
    context = torch.tensor([[1, 0, 0, 1, 1, 0]]).bool()  # position 0 is padding: stays pad
    spans = ModalitySpans.from_masks(attention, image=image, context=context)
    assert spans.describe(0) == "pad[0:1] text[1:2] image[2:3] context[3:5] text[5:6]"
    with pytest.raises(ValueError, match="overlaps"):
        ModalitySpans.from_masks(attention, image=image, context=image)
    assert SPAN_NAMES == ("image", "video", "audio", "context", "text")


def test_image_mask_on_padding_is_still_padding() -> None:
    # A pad token that happens to equal the image id must not count as image.
    spans = ModalitySpans.from_masks(torch.tensor([[0, 1]]), image=torch.tensor([[1, 1]]).bool())
    assert spans.codes.tolist() == [[PAD_CODE, span_code("image")]]


def test_overlapping_masks_are_rejected() -> None:
    mask = torch.tensor([[1, 0]]).bool()
    with pytest.raises(ValueError, match="overlaps"):
        ModalitySpans.from_masks(torch.ones(1, 2), image=mask, video=mask)


def test_unknown_mask_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown modality"):
        ModalitySpans.from_masks(torch.ones(1, 2), smell=torch.zeros(1, 2).bool())
    with pytest.raises(ValueError, match="unknown span"):
        span_code("smell")


def test_answer_positions_left_and_right_padding() -> None:
    left = ModalitySpans.from_masks(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]))
    right = ModalitySpans.from_masks(torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]))
    assert left.answer_positions().tolist() == [3, 3]
    assert right.answer_positions().tolist() == [1, 3]
    with pytest.raises(ValueError, match="all padding"):
        ModalitySpans.from_masks(torch.tensor([[0, 0]])).answer_positions()


def test_one_hot_follows_span_names_and_zeroes_padding() -> None:
    spans = ModalitySpans.from_masks(torch.tensor([[0, 1, 1]]), image=torch.tensor([[0, 1, 0]]).bool())
    hot = spans.one_hot()
    assert hot.shape == (1, 3, len(SPAN_NAMES))
    assert hot[0, 0].sum() == 0
    assert hot[0, 1, SPAN_NAMES.index("image")] == 1
    assert hot[0, 2, SPAN_NAMES.index("text")] == 1


# ----------------------------------------------------------------------------- families


def _two_prompts(images: dict) -> list[Prompt]:
    """Two prompts of clearly different lengths, both with the same-size image."""
    return [
        Prompt("What color is the circle?", images=[images["red_square"]]),
        Prompt("What color is the big square in the picture? Please answer with one word.",
               context="The square is painted blue.", images=[images["red_square"]]),
    ]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_spans_match_image_token_ids(family, tiny_model, images, padding_side) -> None:
    lm = tiny_model(family)
    batch = lm.encode(_two_prompts(images), padding_side=padding_side)
    ids, attention = batch["input_ids"], batch["attention_mask"]
    spans = lm.spans(batch)
    image_id = lm.adapter.token_ids(lm.config)["image"]
    pad_id = lm.tokenizer.pad_token_id

    assert torch.equal(spans.mask("image"), (ids == image_id) & attention.bool())
    assert spans.mask("image").sum(dim=1).min() > 0
    assert torch.equal(spans.mask("pad"), attention == 0)
    assert (ids[spans.mask("pad")] == pad_id).all(), "padding positions hold the pad token"
    assert spans.mask("pad").sum(dim=1).tolist()[0] > 0, "the shorter prompt is padded"
    assert spans.mask("pad")[1].sum() == 0, "the longer prompt is not"
    # the padded row's padding sits on the requested side of its text
    pad_positions = spans.mask("pad")[0].nonzero().flatten()
    text_positions = spans.mask("text")[0].nonzero().flatten()
    if padding_side == "left":
        assert pad_positions.max() < text_positions.min()
    else:
        assert pad_positions.min() > text_positions.max()
    # the answer position is the last real token, which is text (the generation prompt)
    answer = spans.answer_positions()
    assert spans.codes[torch.arange(2), answer].tolist() == [span_code("text")] * 2


def test_qwen_vision_wrappers_are_text(tiny_model, images) -> None:
    for family in ("qwen2_vl", "qwen2_5_vl"):
        lm = tiny_model(family)
        batch = lm.encode(_two_prompts(images))
        spans = lm.spans(batch)
        ids = batch["input_ids"]
        for name in ("vision_start_token_id", "vision_end_token_id"):
            wrapper = ids == getattr(lm.config, name)
            assert wrapper.sum() == 2, f"one {name} per row"
            assert (spans.codes[wrapper] == span_code("text")).all()
        row = spans.ranges(0)
        image_run = next(i for i, r in enumerate(row) if r[0] == "image")
        start, stop = row[image_run][1], row[image_run][2]
        assert ids[0, start - 1] == lm.config.vision_start_token_id
        assert ids[0, stop] == lm.config.vision_end_token_id


def test_instructblip_query_tokens_precede_left_padding(tiny_model, images) -> None:
    lm = tiny_model("instructblip")
    batch = lm.encode(_two_prompts(images), padding_side="left")
    spans = lm.spans(batch)
    queries = lm.config.num_query_tokens
    short = spans.ranges(0)
    assert short[0] == ("image", 0, queries)
    assert short[1][0] == "pad" and short[1][1] == queries, "padding comes after the queries"
    assert short[2][0] == "text"
    assert spans.ranges(1)[0] == ("image", 0, queries)
    assert [r[0] for r in spans.ranges(1)] == ["image", "text", "context", "text"], "BOS first"
    assert spans.counts()["image"] == [queries, queries]
    assert spans.answer_positions().tolist() == [spans.seq_len - 1] * 2


# ----------------------------------------------------------------------------- context


def _context_prompts(images: dict) -> list[Prompt]:
    """Rows of different lengths: two descriptions, a row without one, a text-only row."""
    return [
        Prompt("What color is the circle?", context="The circle is red.",
               images=[images["red_square"]]),
        Prompt("What color is the big square in the picture? Please answer with one word.",
               context="The square is painted blue, or green. It is big.",
               images=[images["blue_wide"]]),
        Prompt("What color is it?", images=[images["green_tall"]]),
    ]


def _check_context_tokens(lm, prompts: list[Prompt], padding_side: str) -> None:
    batch = lm.encode(prompts, padding_side=padding_side)
    spans = lm.spans(batch)
    tokenizer = lm.tokenizer
    for row, prompt in enumerate(prompts):
        context = spans.mask("context")[row]
        ids = batch["input_ids"][row][context].tolist()
        if not prompt.context:
            assert ids == [], f"row {row} has no context but a context span"
            continue
        # exactly the description's tokens: as the tokenizer splits it alone, in one run
        assert ids == tokenizer(prompt.context, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids).strip() == prompt.context
        assert [r for r in spans.ranges(row) if r[0] == "context"] == [
            ("context", int(context.nonzero().min()), int(context.nonzero().max()) + 1)]
        # the question follows it and is text
        question = tokenizer(prompt.question, add_special_tokens=False)["input_ids"]
        after = batch["input_ids"][row][int(context.nonzero().max()) + 1:].tolist()
        assert any(after[i:i + len(question)] == question for i in range(len(after)))
    # every span keeps its tokens: context is carved out of text, image untouched
    image_id = lm.adapter.token_ids(lm.config)["image"]
    assert torch.equal(spans.mask("image"),
                       (batch["input_ids"] == image_id) & batch["attention_mask"].bool())
    assert not bool((spans.mask("context") & ~batch["attention_mask"].bool()).any())


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_context_span_is_the_description(family, tiny_model, images, padding_side) -> None:
    lm = tiny_model(family)
    prompts = _context_prompts(images)
    _check_context_tokens(lm, prompts, padding_side)
    # text-only rows (InstructBLIP batches cannot mix rows with and without images)
    text_only = [Prompt(p.question, context=p.context) for p in prompts]
    _check_context_tokens(lm, text_only, padding_side)


def test_generic_adapter_finds_the_context(family, tiny_model, images) -> None:
    from dataclasses import replace

    from modprobe.adapters import generic_adapter

    lm = tiny_model(family)
    generic = replace(lm, adapter=generic_adapter(lm.model, lm.processor))
    assert generic.adapter.family.startswith("generic:")
    _check_context_tokens(generic, _context_prompts(images), "left")


def test_batch_without_context_mask_has_no_context_span(tiny_model, images) -> None:
    lm = tiny_model("llava")
    batch = lm.encode(_context_prompts(images))
    assert int(lm.spans(batch).mask("context").sum()) > 0
    del batch["context_mask"]
    assert int(lm.spans(batch).mask("context").sum()) == 0
    assert "context_mask" not in lm.adapter.model_inputs(lm.encode(_context_prompts(images)))


def test_context_location_errors() -> None:
    from modprobe.adapters.context import ContextLocationError, context_char_range

    rendered = "USER: The circle is red.\nWhat color? ASSISTANT:"
    assert context_char_range(rendered, "The circle is red.\nWhat color?",
                              "The circle is red.") == (6, 24)
    with pytest.raises(ContextLocationError, match="verbatim"):
        context_char_range(rendered, "A square.\nWhat?", "A square.")


def test_context_needs_matching_processor_tokens(tiny_model, images) -> None:
    from modprobe.adapters.context import ContextLocationError, locate_context

    lm = tiny_model("llava")
    prompt = _context_prompts(images)[0]
    batch = lm.encode([prompt])
    rendered = lm.adapter.prompt_text(lm.processor, prompt)
    expected = lm.spans(batch).mask("context")

    def locate(ids: torch.Tensor) -> torch.Tensor:
        return locate_context(lm.tokenizer, [rendered], [prompt.text], [prompt.context], ids,
                              torch.ones_like(ids))

    # a processor that appends a token after the text (PaliGemma's newline) is tolerated
    newline = lm.tokenizer.convert_tokens_to_ids("\n")
    longer = torch.cat([batch["input_ids"], torch.tensor([[newline]])], dim=1)
    assert torch.equal(locate(longer)[:, :-1], expected)
    # a row whose question differs from the tokenizer's is refused, not guessed
    ids = batch["input_ids"].clone()
    after = int(expected[0].nonzero().max()) + 1
    ids[0, after] = lm.tokenizer.convert_tokens_to_ids("blue")
    with pytest.raises(ContextLocationError, match="row 0"):
        locate(ids)
