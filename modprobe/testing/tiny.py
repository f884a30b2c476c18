"""Tiny random-weight models of every supported family, built offline.

Each tiny model is the real transformers class of its family (``LlavaForConditionalGeneration``,
``Qwen2VLForConditionalGeneration``, ...) built from a small config, with a working
processor (:mod:`modprobe.testing.tiny_processors`: a word-level tokenizer, the family's
PIL image processor, a chat template shaped like the real one) and saved with
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
from modprobe.testing.tiny_processors import (
    FAMILIES,
    IMAGE_SIZE,
    LLAVA_CHAT_TEMPLATE,
    LLAVA_NEXT_CHAT_TEMPLATE,
    LLAVA_NEXT_PINPOINTS,
    NUM_QUERY_TOKENS,
    PATCH_SIZE,
    QWEN_CHAT_TEMPLATE,
    QWEN_PATCH_SIZE,
    build_instructblip_processor,
    build_llava_next_processor,
    build_llava_processor,
    build_qwen_processor,
    check_family,
    llama_tokenizer,
    qformer_tokenizer,
    qwen_tokenizer,
    tiny_processor,
    tiny_tokenizer,
)

__all__ = [
    "FAMILIES",
    "IMAGE_SIZE",
    "LLAVA_CHAT_TEMPLATE",
    "LLAVA_NEXT_CHAT_TEMPLATE",
    "LLAVA_NEXT_PINPOINTS",
    "NUM_QUERY_TOKENS",
    "PATCH_SIZE",
    "QWEN_CHAT_TEMPLATE",
    "QWEN_PATCH_SIZE",
    "TEXT_DEFAULTS",
    "build_instructblip_processor",
    "build_llava_next_processor",
    "build_llava_processor",
    "build_qwen_processor",
    "build_tiny",
    "check_family",
    "llama_tokenizer",
    "qformer_tokenizer",
    "qwen_tokenizer",
    "tiny_config",
    "tiny_model",
    "tiny_processor",
    "tiny_tokenizer",
]

#: Language-model shape shared by all tiny models (overridable per build).
TEXT_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}


# --------------------------------------------------------------------------- configs
def _clip_vision(image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE) -> dict[str, Any]:
    return {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": image_size,
            "patch_size": patch_size, "projection_dim": 32}


def tiny_config(family: str, tokenizer: Any | None = None, **text_overrides: Any) -> Any:
    """The config of a family's tiny model.

    Args:
        family: One of :data:`~modprobe.testing.tiny_processors.FAMILIES`.
        tokenizer: Language tokenizer whose vocabulary and special-token ids the config
            uses (default:
            :func:`~modprobe.testing.tiny_processors.tiny_tokenizer`).
        **text_overrides: Language-model fields replacing :data:`TEXT_DEFAULTS`, e.g.
            ``num_hidden_layers=4`` or ``hidden_size=128``.

    Returns:
        A transformers config (``LlavaConfig``, ``Qwen2VLConfig``, ...).

    Raises:
        ValueError: for an unknown family or an override that is no text-config field.
    """
    check_family(family)
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
        family: One of :data:`~modprobe.testing.tiny_processors.FAMILIES`.
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
        family: One of :data:`~modprobe.testing.tiny_processors.FAMILIES`.
        out_dir: Folder to write (created if needed); ``modprobe.load(out_dir)`` loads it.
        seed: Seed of the random weights (same seed, same weights).
        **text_overrides: Language-model config fields, see :func:`tiny_config`.

    Returns:
        The folder, as a ``Path``.
    """
    check_family(family)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(family)
    processor = tiny_processor(family, tokenizer)
    model = tiny_model(family, tiny_config(family, tokenizer, **text_overrides), seed=seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    make_readable(out)  # safetensors writes 0600; a shared test model must be readable
    return out
