"""Aya Vision tiny model (Cohere2 language model)."""

from __future__ import annotations

from typing import Any

from modprobe.testing.families.common import (
    IMAGE_SIZE,
    PATCH_SIZE,
    SCAFFOLD_WORDS,
    SIGLIP,
    TEXT,
    token_config_ids,
)
from modprobe.testing.tokenizer import DEFAULT_WORDS, word_level_tokenizer

# --------------------------------------------------------------------------- Aya Vision
#: CohereLabs/aya-vision-8b: the template writes ``<BOS_TOKEN>``; ``<image>`` becomes
#: ``<|START_OF_IMG|>`` [``TILE_i`` patches]... ``TILE_GLOBAL`` patches ``<|END_OF_IMG|>``.
AYA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|START_OF_TURN_TOKEN|>"
    "{{ '<|USER_TOKEN|>' if message['role'] == 'user' else '<|CHATBOT_TOKEN|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|END_OF_TURN_TOKEN|>{% endfor %}"
    "{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{% endif %}"
)


def aya_vision() -> tuple[Any, Any]:
    """The tiny Aya Vision model's config and processor.

    Aya Vision (Cohere2 LM): sliding-window layers with RoPE and a full-attention layer
    without RoPE (NoPE), tiles with a global view, BOS written by the template.
    """
    from transformers import AyaVisionConfig, AyaVisionProcessor
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import (
        GotOcr2ImageProcessorPil,
    )

    specials = ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", "<PAD>", "<image>", "<|START_OF_IMG|>",
                "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "<|START_OF_TURN_TOKEN|>",
                "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>")
    tiles = ("TILE_GLOBAL", *(f"TILE_{i}" for i in range(1, 9)))
    tok = word_level_tokenizer((*DEFAULT_WORDS, *SCAFFOLD_WORDS, *tiles), specials,
                               bos_token="<BOS_TOKEN>", eos_token="<|END_OF_TURN_TOKEN|>",
                               pad_token="<PAD>", add_bos=True)
    text = {"model_type": "cohere2", **TEXT, **token_config_ids(tok), "sliding_window": 8,
            "layer_types": ["sliding_attention", "sliding_attention", "full_attention"]}
    config = AyaVisionConfig(
        text_config=text, vision_config={"model_type": "siglip_vision_model", **SIGLIP},
        downsample_factor=2, image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"),
        tie_word_embeddings=False)
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, crop_to_patches=True, min_patches=1,
        max_patches=4)
    processor = AyaVisionProcessor(
        # the processor multiplies patch_size by downsample_factor itself
        image_processor=image_processor, tokenizer=tok, patch_size=PATCH_SIZE,
        img_size=IMAGE_SIZE, downsample_factor=2, chat_template=AYA_TEMPLATE)
    return config, processor
