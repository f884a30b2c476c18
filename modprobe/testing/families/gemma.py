"""Gemma 3 and PaliGemma (1 and 2) tiny models."""

from __future__ import annotations

from typing import Any

from modprobe.testing.families.common import (
    IMAGE_SIZE,
    PATCH_SIZE,
    SIGLIP,
    TEXT,
    family_tokenizer,
    token_config_ids,
)

# --------------------------------------------------------------------------- Gemma 3
#: ``google/gemma-3-*-it``: the template writes BOS; one ``<start_of_image>`` per image, which
#: the processor expands to ``\n\n<start_of_image><image_soft_token>xN<end_of_image>\n\n``.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_GEMMA_SPECIALS = ("<bos>", "<eos>", "<pad>", "<start_of_image>", "<end_of_image>",
                   "<image_soft_token>", "<start_of_turn>", "<end_of_turn>", "<image>")


def gemma3() -> tuple[Any, Any]:
    """The tiny Gemma 3 model's config and processor.

    Bidirectional attention within image blocks (``token_type_ids``), sliding-window
    layers (window 8), query/key norms, BOS written by the template.
    """
    from transformers import Gemma3Config, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok = family_tokenizer(_GEMMA_SPECIALS, {"boi_token": "<start_of_image>",
                                       "eoi_token": "<end_of_image>",
                                       "image_token": "<image_soft_token>"})
    text = {**TEXT, **token_config_ids(tok), "sliding_window": 8, "query_pre_attn_scalar": 16,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}
    config = Gemma3Config(
        text_config=text, vision_config=SIGLIP, mm_tokens_per_image=4,
        boi_token_id=tok.boi_token_id, eoi_token_id=tok.eoi_token_id,
        image_token_id=tok.image_token_id)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tok, chat_template=GEMMA3_TEMPLATE, image_seq_length=4)
    return config, processor


# --------------------------------------------------------------------------- PaliGemma
def _paligemma(text_model: str, **text_extra: Any) -> tuple[Any, Any]:
    from transformers import PaliGemmaConfig, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = family_tokenizer(_GEMMA_SPECIALS, {"image_token": "<image>"})
    n_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    text = {"model_type": text_model, **TEXT, **token_config_ids(tok), **text_extra}
    vision = {"model_type": "siglip_vision_model", **SIGLIP, "projection_dim": 64}
    config = PaliGemmaConfig(
        text_config=text, vision_config=vision, image_token_index=tok.image_token_id,
        projection_dim=64, hidden_size=64)
    config.text_config.num_image_tokens = n_tokens
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    image_processor.image_seq_length = n_tokens
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    return config, processor


def paligemma() -> tuple[Any, Any]:
    """The tiny PaliGemma model's config and processor.

    PaliGemma (Gemma LM): no chat template, ``token_type_ids`` (bidirectional prefix),
    and ``labels`` in every processor output.
    """
    return _paligemma("gemma")


def paligemma2() -> tuple[Any, Any]:
    """The tiny PaliGemma 2 model's config and processor.

    PaliGemma 2 (Gemma 2 LM): soft-capped attention (5) and final logits (0.5),
    sliding-window layers; SDPA refuses soft-capping, so it runs eager.
    """
    # The released caps are 50 (attention) and 30 (logits); tiny random logits are far
    # below those, so smaller caps make the capping visible (a missed cap shows).
    return _paligemma("gemma2", attn_logit_softcapping=5.0, final_logit_softcapping=0.5,
                      query_pre_attn_scalar=16, sliding_window=8,
                      layer_types=["sliding_attention", "full_attention", "sliding_attention"])
