"""Test support: tiny random-weight models of every supported family, built offline.

``python -m modprobe.testing tiny FAMILY --out DIR [--seed S]`` writes one; from Python,
``build_tiny(family, out_dir, seed=0)``. See ``docs/models.md``.
"""

from modprobe.testing.tiny import (
    FAMILIES,
    build_instructblip_processor,
    build_llava_next_processor,
    build_llava_processor,
    build_qwen_processor,
    build_tiny,
    llama_tokenizer,
    qformer_tokenizer,
    qwen_tokenizer,
    tiny_config,
    tiny_model,
    tiny_processor,
    tiny_tokenizer,
)
from modprobe.testing.tokenizer import COLOR_WORDS, DEFAULT_WORDS, word_level_tokenizer

__all__ = [
    "COLOR_WORDS",
    "DEFAULT_WORDS",
    "FAMILIES",
    "build_instructblip_processor",
    "build_llava_next_processor",
    "build_llava_processor",
    "build_qwen_processor",
    "build_tiny",
    "llama_tokenizer",
    "qformer_tokenizer",
    "qwen_tokenizer",
    "tiny_config",
    "tiny_model",
    "tiny_processor",
    "tiny_tokenizer",
    "word_level_tokenizer",
]
