"""Tiny models of image-text-to-text families that modprobe reaches through the generic adapter.

Each entry of :data:`TINY_FAMILIES` builds a family's real transformers class from its
own config class, shrunk (a 3-layer language model of width 64, a 2-layer vision tower
on 32-pixel images), with a processor whose token layout is the real one: the family's
processor class around a word-level tokenizer holding the family's special tokens, and a
chat template shaped like the released checkpoint's (BOS written by the template where
the real one writes it). Where the real image processor needs torchvision (not
installed), :class:`StandInImageProcessor` produces pixel values of the shape the model
expects.

```python
from modprobe.testing.families import build_family
folder = build_family("gemma3", "/tmp/tiny-gemma3")
lm = modprobe.load(folder, dtype="float32")
```
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modprobe.testing.tokenizer import DEFAULT_WORDS, word_level_tokenizer

#: Side of the images the tiny vision towers see, and their patch side.
IMAGE_SIZE = 32
PATCH_SIZE = 8
#: Words of the chat scaffolds of these families (one token each).
SCAFFOLD_WORDS = ("model", "Assistant", "User", "<", ">", "|", "end", "of", "text")

TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "max_position_embeddings": 1024, "tie_word_embeddings": False}

SIGLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}


@dataclass(frozen=True)
class TinyFamily:
    """How to build one family's tiny model and how modprobe is expected to treat it.

    Attributes:
        model_type: ``config.model_type`` (a key of transformers' image-text-to-text map).
        build: Returns ``(config, processor)``.
        attn_implementation: The kernel the capture runs on (``"eager"`` where SDPA is
            refused, e.g. soft-capped attention).
        attention: Whether attention mass is captured (False: refused, lens only).
        sharpen: Factor for :func:`modprobe.capture.reference.sharpen_attention` in tests
            (attention scores times its square): smaller for families that normalise
            queries and keys, whose random scores are not near zero to begin with.
        note: What the family exercises.
    """

    model_type: str
    build: Callable[[], tuple[Any, Any]]
    attn_implementation: str = "sdpa"
    attention: bool = True
    sharpen: float = 8.0
    note: str = ""


def _tokenizer(specials: tuple[str, ...], roles: dict[str, str] | None = None,
               bos: str | None = "<bos>", add_bos: bool = True, eos: str = "<eos>",
               pad: str = "<pad>") -> Any:
    return word_level_tokenizer(
        (*DEFAULT_WORDS, *SCAFFOLD_WORDS), specials, bos_token=bos, eos_token=eos,
        pad_token=pad, add_bos=add_bos, extra_special_tokens=roles)


def _ids(tokenizer: Any) -> dict[str, Any]:
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


# --------------------------------------------------------------------------- Gemma 3
#: google/gemma-3-*-it: the template writes BOS; one ``<start_of_image>`` per image, which
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
    """Gemma 3: bidirectional attention within image blocks (``token_type_ids``),
    sliding-window layers (window 8), query/key norms, BOS written by the template."""
    from transformers import Gemma3Config, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok = _tokenizer(_GEMMA_SPECIALS, {"boi_token": "<start_of_image>",
                                       "eoi_token": "<end_of_image>",
                                       "image_token": "<image_soft_token>"})
    text = {**TEXT, **_ids(tok), "sliding_window": 8, "query_pre_attn_scalar": 16,
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

    tok = _tokenizer(_GEMMA_SPECIALS, {"image_token": "<image>"})
    n_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    text = {"model_type": text_model, **TEXT, **_ids(tok), **text_extra}
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
    """PaliGemma (Gemma LM): no chat template, ``token_type_ids`` (bidirectional prefix),
    and ``labels`` in every processor output."""
    return _paligemma("gemma")


def paligemma2() -> tuple[Any, Any]:
    """PaliGemma 2 (Gemma 2 LM): soft-capped attention (50) and final logits (30),
    sliding-window layers; SDPA refuses soft-capping, so it runs eager."""
    return _paligemma("gemma2", attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                      query_pre_attn_scalar=16, sliding_window=8,
                      layer_types=["sliding_attention", "full_attention", "sliding_attention"])


# --------------------------------------------------------------------------- Mllama
#: meta-llama/Llama-3.2-11B-Vision-Instruct: BOS written by the template, one ``<|image|>``
#: token per image (the image itself enters through cross-attention layers).
MLLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|image|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>",
                    "<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                    "<|python_tag|>")


def _llama3_tokenizer(roles: dict[str, str] | None = None,
                      extra: tuple[str, ...] = ()) -> Any:
    return _tokenizer((*_LLAMA3_SPECIALS, *extra), roles, bos="<|begin_of_text|>",
                      eos="<|eot_id|>", pad="<|finetune_right_pad_id|>")


def mllama() -> tuple[Any, Any]:
    """Mllama (Llama 3.2 Vision): layer 1 of 3 cross-attends to the image tiles."""
    from transformers import MllamaConfig, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tok = _llama3_tokenizer()
    text = {**TEXT, **_ids(tok), "cross_attention_layers": [1]}
    text.pop("head_dim")
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_global_layers": 1, "attention_heads": 4, "image_size": IMAGE_SIZE,
              "patch_size": PATCH_SIZE, "max_num_tiles": 2, "intermediate_layers_indices": [0],
              "vision_output_dim": 64, "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]]}
    config = MllamaConfig(text_config=text, vision_config=vision,
                          image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    image_processor = MllamaImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, max_image_tiles=2)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok,
                                chat_template=MLLAMA_TEMPLATE)
    return config, processor


# --------------------------------------------------------------------------- Idefics3
#: HuggingFaceM4/Idefics3-8B-Llama3: ``<|begin_of_text|>User:<image>{text}<end_of_utterance>``
#: (BOS written by the template); the processor expands ``<image>`` into tiles
#: (``<row_i_col_j>``) plus a global image, so the token count depends on the image.
IDEFICS3_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def idefics3() -> tuple[Any, Any]:
    """Idefics3 (and SmolVLM, the same model): per-image tiling, pixel-shuffle connector,
    ``pixel_attention_mask``, BOS written by the template."""
    from transformers import Idefics3Config, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    grid = tuple(f"<row_{i}_col_{j}>" for i in range(1, 5) for j in range(1, 5))
    tok = _llama3_tokenizer(extra=("<end_of_utterance>", "<image>", "<fake_token_around_image>",
                                   "<global-img>", *grid))
    text = {"model_type": "llama", **TEXT, **_ids(tok)}
    config = Idefics3Config(text_config=text, vision_config={**SIGLIP}, scale_factor=2,
                            image_token_id=tok.convert_tokens_to_ids("<image>"))
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE})
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, chat_template=IDEFICS3_TEMPLATE,
        image_seq_len=(IMAGE_SIZE // PATCH_SIZE) ** 2 // 4)
    return config, processor


#: Families of the matrix, in test order.
TINY_FAMILIES: dict[str, TinyFamily] = {f.model_type: f for f in (
    TinyFamily("gemma3", gemma3, sharpen=1.5, note="token_type_ids, sliding window, template BOS"),
    TinyFamily("paligemma", paligemma, note="no template, token_type_ids, labels"),
    TinyFamily("paligemma2", paligemma2, attn_implementation="eager",
               note="soft-capped attention and logits (SDPA refused)"),
    TinyFamily("mllama", mllama, attention=False,
               note="cross-attention layers: lens only, attention refused"),
    TinyFamily("idefics3", idefics3, note="tiled images, pixel_attention_mask, template BOS"),
)}


def build_family(name: str, out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Build a tiny model of a :data:`TINY_FAMILIES` entry and save it with its processor.

    Returns:
        The folder; ``modprobe.load(folder)`` loads it.
    """
    if name not in TINY_FAMILIES:
        raise ValueError(f"no tiny model for {name!r}; use one of {', '.join(TINY_FAMILIES)}")
    from transformers import AutoModelForImageTextToText

    config, processor = TINY_FAMILIES[name].build()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).eval()
    with torch.no_grad():
        # Gates initialised at zero (Mllama's cross-attention gates) would keep the image
        # out of the language model altogether; open them so the image matters.
        for pname, param in model.named_parameters():
            if pname.endswith("_gate") and param.numel() == 1 and float(param) == 0:
                param.fill_(1.0)
            # likewise all-zero projection matrices (Gemma 3's mm_input_projection_weight)
            elif param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.02)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
