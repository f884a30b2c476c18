"""Tiny random-weight models of every supported family, built offline.

Each tiny model is the real transformers class of its family (``LlavaForConditionalGeneration``,
``Qwen2VLForConditionalGeneration``, ...) built from a small config, with a working
processor (word-level tokenizer from :mod:`modprobe.testing.tokenizer`, the family's PIL
image processor, a chat template shaped like the real one) and saved with
``save_pretrained`` so that ``modprobe.load(folder)`` reads it like a real checkpoint.

The sizes keep the family's structure where it matters to modprobe: grouped-query
attention (4 query heads, 2 key/value heads), a vision tower, a variable number of image
tokens for LLaVA-NeXT (any-resolution tiling) and Qwen-VL (one token per 2x2 patches of
the resized image), and InstructBLIP's query tokens placed before the left padding.

```python
from modprobe.testing import build_tiny
folder = build_tiny("llava", "/tmp/tiny-llava", seed=0)
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from modprobe.io import make_readable
from modprobe.testing.tokenizer import DEFAULT_WORDS, word_level_tokenizer

#: Families with a tiny model, in the order tests parametrize them.
FAMILIES: tuple[str, ...] = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "instructblip")

#: Language-model shape shared by all tiny models (overridable per build).
TEXT_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}

#: Side of the square images the fixed-resolution tiny vision towers see.
IMAGE_SIZE = 32
#: Vision patch side of the CLIP/BLIP tiny towers (``(32 / 8) ** 2 = 16`` patches).
PATCH_SIZE = 8
#: Patch side of the Qwen-VL tiny towers (a 2x2 merge makes one token per 8x8 pixels).
QWEN_PATCH_SIZE = 4
#: InstructBLIP query tokens (the real model has 32; few keep tests fast).
NUM_QUERY_TOKENS = 8
#: LLaVA-NeXT tiling grid (the real one uses 336-pixel tiles: [[336, 672], ...]).
LLAVA_NEXT_PINPOINTS: list[list[int]] = [[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]]

# --------------------------------------------------------------------------- templates
# Shaped like the real checkpoints' templates: image placeholders first, then the text.

#: llava-hf/llava-1.5-*: ``USER: <image>\n{text} ASSISTANT:``.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

#: llava-hf/llava-v1.6-mistral-*: ``[INST] <image>\n{text} [/INST]``.
LLAVA_NEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{% endif %}"
    "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if message['content'] is string %}{{ ' ' + message['content'] + '</s>' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ ' ' + content['text'] + '</s>' }}{% endfor %}{% endif %}"
    "{% endif %}{% endfor %}"
)

#: ``Qwen/Qwen2-VL-*-Instruct`` and Qwen2.5-VL: ChatML with ``<|vision_start|>`` wrappers.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Special tokens of each family's language tokenizer, and which of them play which role.
_LLAMA_SPECIALS = ("<s>", "</s>", "<pad>", "<image>")
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
_MISTRAL_WORDS = ("[", "]", "/", "INST")  # "[INST]" is plain text in the real tokenizer too


# --------------------------------------------------------------------------- tokenizers
def llama_tokenizer(words: tuple[str, ...] = DEFAULT_WORDS) -> Any:
    """Word-level tokenizer shaped like LLaVA's Llama/Mistral one: BOS added, ``<image>``, ``<pad>``."""
    return word_level_tokenizer(
        (*words, *_MISTRAL_WORDS), _LLAMA_SPECIALS, bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", add_bos=True)


def qwen_tokenizer(words: tuple[str, ...] = DEFAULT_WORDS) -> Any:
    """Word-level tokenizer shaped like Qwen2's: no BOS, ChatML and vision special tokens."""
    return word_level_tokenizer(
        words, _QWEN_SPECIALS, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def qformer_tokenizer(words: tuple[str, ...] = DEFAULT_WORDS) -> Any:
    """BERT-style word-level tokenizer for InstructBLIP's Q-Former (``[CLS] text [SEP]``)."""
    return word_level_tokenizer(
        words, ("[PAD]", "[CLS]", "[SEP]", "[MASK]"), unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", padding_side="right")


def tiny_tokenizer(family: str) -> Any:
    """The language tokenizer of a family's tiny model."""
    _check_family(family)
    return qwen_tokenizer() if family.startswith("qwen") else llama_tokenizer()


# --------------------------------------------------------------------------- processors
def build_llava_processor(
    tokenizer: Any,
    image_size: int = IMAGE_SIZE,
    patch_size: int = PATCH_SIZE,
    *,
    chat_template: str | None = LLAVA_CHAT_TEMPLATE,
    vision_feature_select_strategy: str = "default",
) -> Any:
    """A ``LlavaProcessor`` for square ``image_size`` images cut into ``patch_size`` patches.

    Images are resized (shortest edge) and center-cropped to ``image_size``, so every image
    gives ``(image_size // patch_size) ** 2`` ``<image>`` tokens (the CLS token is dropped
    under the ``"default"`` feature strategy, as in LLaVA-1.5).

    Args:
        tokenizer: Language tokenizer holding an ``<image>`` special token.
        image_size: Side of the images the vision tower sees.
        patch_size: Vision patch side.
        chat_template: Jinja chat template (default: LLaVA-1.5's ``USER: ... ASSISTANT:``).
        vision_feature_select_strategy: ``"default"`` drops the CLS feature, ``"full"`` keeps it.
    """
    from transformers import LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy=vision_feature_select_strategy,
        num_additional_image_tokens=1, chat_template=chat_template)


def build_llava_next_processor(tokenizer: Any, image_size: int = IMAGE_SIZE,
                               patch_size: int = PATCH_SIZE) -> Any:
    """A ``LlavaNextProcessor`` whose any-resolution tiling gives size-dependent token counts.

    Args:
        tokenizer: The language tokenizer (with ``<image>``).
        image_size: Side of one tile in pixels.
        patch_size: Side of one vision patch in pixels.

    Returns:
        The processor.
    """
    from transformers import LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import (
        LlavaNextImageProcessorPil,
    )

    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=LLAVA_NEXT_PINPOINTS)
    return LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_NEXT_CHAT_TEMPLATE)


def build_qwen_processor(family: str, tokenizer: Any, patch_size: int = QWEN_PATCH_SIZE) -> Any:
    """A Qwen2-VL / Qwen2.5-VL processor: images resized to multiples of ``2 * patch_size``.

    An ``h x w`` image gives ``(h / (2 * patch_size)) * (w / (2 * patch_size))``
    ``<|image_pad|>`` tokens (after rounding to the grid and clamping to 16..256 pixels
    per side squared), so different sizes give different counts.

    Args:
        family: ``"qwen2_vl"`` or ``"qwen2_5_vl"``.
        tokenizer: The language tokenizer (with the vision tokens).
        patch_size: Side of one vision patch in pixels.

    Returns:
        The processor.
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )
    from transformers.utils import is_torchvision_available

    from modprobe.loading import image_only_processor_class

    factor = 2 * patch_size
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch_size, merge_size=2, temporal_patch_size=2,
        min_pixels=(2 * factor) ** 2, max_pixels=(16 * factor) ** 2)
    cls = Qwen2VLProcessor if family == "qwen2_vl" else Qwen2_5_VLProcessor
    if not is_torchvision_available():
        # transformers cannot build Qwen's video processor without torchvision; modprobe
        # needs images only (the saved processor still loads as the real class).
        return image_only_processor_class(cls)(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_CHAT_TEMPLATE)
    from transformers import Qwen2VLVideoProcessor

    video_processor = Qwen2VLVideoProcessor(
        patch_size=patch_size, merge_size=2, temporal_patch_size=2,
        min_pixels=(2 * factor) ** 2, max_pixels=(16 * factor) ** 2)
    return cls(image_processor=image_processor, tokenizer=tokenizer,
               video_processor=video_processor, chat_template=QWEN_CHAT_TEMPLATE)


def build_instructblip_processor(tokenizer: Any, image_size: int = IMAGE_SIZE,
                                 num_query_tokens: int = NUM_QUERY_TOKENS) -> Any:
    """An ``InstructBlipProcessor`` (no chat template; it prepends the query tokens itself).

    Args:
        tokenizer: The language tokenizer.
        image_size: Side of the images in pixels.
        num_query_tokens: Q-Former query tokens prepended to the prompt.

    Returns:
        The processor.
    """
    from transformers import InstructBlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    image_processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    return InstructBlipProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        qformer_tokenizer=qformer_tokenizer(), num_query_tokens=num_query_tokens)


def tiny_processor(family: str, tokenizer: Any | None = None) -> Any:
    """The processor of a family's tiny model.

    Args:
        family: One of :data:`FAMILIES`.
        tokenizer: The language tokenizer to build around (default:
            :func:`tiny_tokenizer`).

    Returns:
        The processor.
    """
    _check_family(family)
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer(family)
    if family == "llava":
        return build_llava_processor(tokenizer)
    if family == "llava_next":
        return build_llava_next_processor(tokenizer)
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return build_qwen_processor(family, tokenizer)
    return build_instructblip_processor(tokenizer)


# --------------------------------------------------------------------------- configs
def _clip_vision(image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE) -> dict[str, Any]:
    return {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": image_size,
            "patch_size": patch_size, "projection_dim": 32}


def tiny_config(family: str, tokenizer: Any | None = None, **text_overrides: Any) -> Any:
    """The config of a family's tiny model.

    Args:
        family: One of :data:`FAMILIES`.
        tokenizer: Language tokenizer whose vocabulary and special-token ids the config
            uses (default: :func:`tiny_tokenizer`).
        **text_overrides: Language-model fields replacing :data:`TEXT_DEFAULTS`, e.g.
            ``num_hidden_layers=4`` or ``hidden_size=128``.

    Returns:
        A transformers config (``LlavaConfig``, ``Qwen2VLConfig``, ...).

    Raises:
        ValueError: for an unknown family or an override that is no text-config field.
    """
    _check_family(family)
    unknown = set(text_overrides) - {*TEXT_DEFAULTS, "rms_norm_eps", "rope_theta",
                                     "tie_word_embeddings", "attention_dropout", "head_dim"}
    if unknown:
        raise ValueError(f"unknown tiny-model override(s) {sorted(unknown)}; "
                         f"use language-model fields such as {', '.join(TEXT_DEFAULTS)}")
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer(family)
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    text = {**TEXT_DEFAULTS, "tie_word_embeddings": False, **ids, **text_overrides}
    if family in ("llava", "llava_next"):
        return _llava_config(family, text, tokenizer)
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return _qwen_config(family, text, tokenizer)
    return _instructblip_config(text, tokenizer)


def _llava_config(family: str, text: dict[str, Any], tokenizer: Any) -> Any:
    """LLaVA-1.5 (Llama LM) or LLaVA-NeXT (Mistral LM) around a tiny CLIP tower."""
    from transformers import LlavaConfig, LlavaNextConfig

    common = {"vision_config": _clip_vision(),
              "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
              "image_seq_length": (IMAGE_SIZE // PATCH_SIZE) ** 2,
              "pad_token_id": text["pad_token_id"]}
    if family == "llava":
        return LlavaConfig(text_config={"model_type": "llama", **text}, **common)
    # LLaVA-NeXT-Mistral's LM is Mistral (GQA, sliding window disabled at 7B scale).
    return LlavaNextConfig(text_config={"model_type": "mistral", **text},
                           image_grid_pinpoints=LLAVA_NEXT_PINPOINTS, **common)


def _qwen_config(family: str, text: dict[str, Any], tokenizer: Any) -> Any:
    """Qwen2-VL or Qwen2.5-VL (windowed vision attention), with M-RoPE sections."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    hidden = text["hidden_size"]
    head_dim = text.get("head_dim") or hidden // text["num_attention_heads"]
    # M-RoPE splits each head's rotary half into temporal/height/width sections.
    half = head_dim // 2
    sections = [half - 2 * (half // 3), half // 3, half // 3]
    text = {**text, "rope_parameters": {"rope_type": "default", "mrope_section": sections,
                                        "rope_theta": text.get("rope_theta", 10000.0)}}
    text.pop("rope_theta", None)
    token_ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"),
        ("vision_end_token_id", "<|vision_end|>"))}
    if family == "qwen2_vl":
        vision = {"depth": 2, "embed_dim": 32, "hidden_size": hidden, "mlp_ratio": 2,
                  "num_heads": 4, "patch_size": QWEN_PATCH_SIZE, "spatial_merge_size": 2,
                  "temporal_patch_size": 2}
        return Qwen2VLConfig(text_config=text, vision_config=vision, **token_ids)
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4,
              "out_hidden_size": hidden, "patch_size": QWEN_PATCH_SIZE,
              "spatial_merge_size": 2, "temporal_patch_size": 2,
              # windows of 2x2 merged tokens; the last block attends globally
              "window_size": 4 * QWEN_PATCH_SIZE, "fullatt_block_indexes": [1]}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **token_ids)


def _instructblip_config(text: dict[str, Any], tokenizer: Any) -> Any:
    """InstructBLIP: a tiny vision tower, Q-Former (its own tokenizer) and Llama LM."""
    from transformers import InstructBlipConfig

    qformer = qformer_tokenizer()
    return InstructBlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": IMAGE_SIZE,
                       "patch_size": PATCH_SIZE},
        qformer_config={"vocab_size": len(qformer), "hidden_size": 32, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "intermediate_size": 64,
                        "encoder_hidden_size": 32, "cross_attention_frequency": 1,
                        "max_position_embeddings": 64, "pad_token_id": qformer.pad_token_id},
        text_config={"model_type": "llama", **text},
        num_query_tokens=NUM_QUERY_TOKENS,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )


# --------------------------------------------------------------------------- models
def tiny_model(family: str, config: Any | None = None, seed: int = 0) -> torch.nn.Module:
    """A random-weight model of the family's real class, in eval mode.

    Args:
        family: One of :data:`FAMILIES`.
        config: Its config (default: :func:`tiny_config`).
        seed: Seed of the random weights.

    Returns:
        The model.
    """
    from transformers import AutoModelForImageTextToText

    config = config if config is not None else tiny_config(family)
    torch.manual_seed(seed)
    return AutoModelForImageTextToText.from_config(config).eval()


def build_tiny(family: str, out_dir: str | os.PathLike[str], seed: int = 0,
               **text_overrides: Any) -> Path:
    """Build a tiny random model of ``family`` with its processor and save both to ``out_dir``.

    Args:
        family: One of :data:`FAMILIES`.
        out_dir: Folder to write (created if needed); ``modprobe.load(out_dir)`` loads it.
        seed: Seed of the random weights (same seed, same weights).
        **text_overrides: Language-model config fields, see :func:`tiny_config`.

    Returns:
        The folder, as a ``Path``.
    """
    _check_family(family)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(family)
    processor = tiny_processor(family, tokenizer)
    model = tiny_model(family, tiny_config(family, tokenizer, **text_overrides), seed=seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    make_readable(out)  # safetensors writes 0600; a shared test model must be readable
    return out


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"no tiny model for family {family!r}; use one of {', '.join(FAMILIES)}")
