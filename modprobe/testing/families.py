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
        stand_in: The processor holds a stand-in part that does not save and reload
            (:func:`load_family` builds such families in memory).
        upstream_error: The error the model's own forward raises in the installed
            transformers (the family cannot run at all, so there is nothing to capture).
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
    stand_in: bool = False
    upstream_error: str = ""
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
    """Aya Vision (Cohere2 LM): sliding-window layers with RoPE and a full-attention layer
    without RoPE (NoPE), tiles with a global view, BOS written by the template."""
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
    text = {"model_type": "cohere2", **TEXT, **_ids(tok), "sliding_window": 8,
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


# --------------------------------------------------------------------------- Qwen2.5-Omni
#: Qwen/Qwen2.5-Omni-7B (the thinker: the text-generating half): ChatML with
#: ``<|vision_bos|><|IMAGE|><|vision_eos|>``; the processor also holds an audio feature
#: extractor and a video processor (none without torchvision).
OMNI_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen2_5_omni_thinker() -> tuple[Any, Any]:
    """Qwen2.5-Omni thinker: M-RoPE, image/video/audio tokens, a processor that
    ``PROCESSOR_MAPPING_NAMES`` lists under another model type (``qwen2_5_omni``)."""
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import (
        Qwen2_5OmniThinkerConfig,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from modprobe.loading import image_only_processor_class

    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_bos|>", "<|vision_eos|>",
                "<|IMAGE|>", "<|VIDEO|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
    tok = word_level_tokenizer((*DEFAULT_WORDS, *SCAFFOLD_WORDS), specials,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               extra_special_tokens={
                                   "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                                   "audio_token": "<|AUDIO|>", "vision_bos_token": "<|vision_bos|>",
                                   "vision_eos_token": "<|vision_eos|>",
                                   "audio_bos_token": "<|audio_bos|>",
                                   "audio_eos_token": "<|audio_eos|>"})
    head_dim = TEXT["head_dim"]
    half = head_dim // 2
    text = {**TEXT, **_ids(tok), "rope_parameters": {
        "rope_type": "default", "rope_theta": 10000.0,
        "mrope_section": [half - 2 * (half // 3), half // 3, half // 3]}}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4,
              "out_hidden_size": 64, "patch_size": 4, "spatial_merge_size": 2,
              "temporal_patch_size": 2, "window_size": 16, "fullatt_block_indexes": [1]}
    audio = {"num_mel_bins": 16, "encoder_layers": 1, "encoder_attention_heads": 2,
             "encoder_ffn_dim": 32, "d_model": 16, "output_dim": 64, "n_window": 4}
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("image_token_index", "<|IMAGE|>"), ("video_token_index", "<|VIDEO|>"),
        ("audio_token_index", "<|AUDIO|>"), ("vision_start_token_id", "<|vision_bos|>"),
        ("vision_end_token_id", "<|vision_eos|>"), ("audio_start_token_id", "<|audio_bos|>"),
        ("audio_end_token_id", "<|audio_eos|>"))}
    config = Qwen2_5OmniThinkerConfig(text_config=text, vision_config=vision,
                                      audio_config=audio, **ids)
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=16 ** 2,
        max_pixels=128 ** 2)
    processor = image_only_processor_class(Qwen2_5OmniProcessor)(
        image_processor=image_processor, video_processor=None,
        feature_extractor=WhisperFeatureExtractor(feature_size=16), tokenizer=tok,
        chat_template=OMNI_TEMPLATE)
    return config, processor


# --------------------------------------------------------------------------- Qwen3-VL
def qwen3_vl() -> tuple[Any, Any]:
    """Qwen3-VL: interleaved M-RoPE, query/key norms, DeepStack visual features added to
    early decoder layers; the ChatML template of Qwen2-VL."""
    from transformers import Qwen3VLConfig, Qwen3VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from modprobe.loading import image_only_processor_class
    from modprobe.testing.tiny import QWEN_CHAT_TEMPLATE, qwen_tokenizer

    tok = qwen_tokenizer()
    text = {**TEXT, **_ids(tok), "rope_parameters": {
        "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2],
        "mrope_interleaved": True}}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4,
              "out_hidden_size": 64, "patch_size": 4, "spatial_merge_size": 2,
              "temporal_patch_size": 2, "num_position_embeddings": 64,
              "deepstack_visual_indexes": [0]}
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **ids)
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=16 ** 2,
        max_pixels=128 ** 2)
    processor = image_only_processor_class(Qwen3VLProcessor)(
        image_processor=image_processor, tokenizer=tok, video_processor=None,
        chat_template=QWEN_CHAT_TEMPLATE)
    return config, processor


# --------------------------------------------------------------------------- Mistral 3
#: mistralai/Mistral-Small-3.1-24B-Instruct: ``<s>[INST][IMG]{text}[/INST]``, BOS written by
#: the template.
MISTRAL3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}[INST]"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}[IMG]"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "[/INST]{% else %}{{ message['content'] }}</s>{% endif %}{% endfor %}"
)


def _stand_in_pixtral_processor(tokenizer: Any, merge: int) -> Any:
    """Stand-in for ``PixtralProcessor`` (which transformers builds only with torchvision).

    Its layout is Pixtral's: an image resized (aspect kept, longest edge at most
    ``2 * IMAGE_SIZE``) to multiples of ``PATCH_SIZE * merge`` pixels becomes ``rows``
    runs of ``cols`` ``[IMG]`` tokens, each ended by ``[IMG_BREAK]`` except the last,
    ended by ``[IMG_END]``; pixel values are padded to the batch's largest image and
    ``image_sizes`` gives each image's size.
    """
    import math

    import numpy as np
    from transformers import BatchFeature, ProcessorMixin

    unit = PATCH_SIZE * merge

    class PixtralProcessor(ProcessorMixin):  # the stand-in keeps the real class name
        image_token = "[IMG]"

        def __init__(self, tokenizer: Any = None, chat_template: str | None = None) -> None:
            super().__init__(tokenizer, chat_template=chat_template)

        def __call__(self, text: Any = None, images: Any = None, videos: Any = None,
                     **kwargs: Any) -> Any:
            texts = [text] if isinstance(text, str) else list(text)
            flat = _flatten(images) if images is not None else []
            arrays, expansions = [], []
            for img in flat:
                w, h = img.size
                scale = min(1.0, 2 * IMAGE_SIZE / max(w, h))
                rows = max(1, math.ceil(h * scale / unit))
                cols = max(1, math.ceil(w * scale / unit))
                resized = img.convert("RGB").resize((cols * unit, rows * unit))
                arrays.append(np.asarray(resized, dtype=np.float32) / 127.5 - 1.0)
                runs = ["[IMG]" * cols + "[IMG_BREAK]"] * rows
                runs[-1] = runs[-1][: -len("[IMG_BREAK]")] + "[IMG_END]"
                expansions.append("".join(runs))
            it = iter(expansions)
            texts = ["".join(part if i == 0 else next(it) + part
                             for i, part in enumerate(t.split("[IMG]"))) for t in texts]
            keys = ("padding", "add_special_tokens", "return_tensors", "padding_side")
            tok_kwargs = {k: v for k, v in kwargs.items() if k in keys}
            tok_kwargs.setdefault("return_tensors", "pt")
            data = dict(self.tokenizer(texts, **tok_kwargs))
            if arrays:
                height = max(a.shape[0] for a in arrays)
                width = max(a.shape[1] for a in arrays)
                pixels = np.zeros((len(arrays), 3, height, width), dtype=np.float32)
                for i, a in enumerate(arrays):
                    pixels[i, :, : a.shape[0], : a.shape[1]] = a.transpose(2, 0, 1)
                data["pixel_values"] = torch.from_numpy(pixels)
                data["image_sizes"] = torch.tensor([a.shape[:2] for a in arrays])
            return BatchFeature(data=data)

    return PixtralProcessor(tokenizer=tokenizer, chat_template=MISTRAL3_TEMPLATE)


def mistral3() -> tuple[Any, Any]:
    """Mistral 3 (Pixtral vision, Mistral LM): image rows with break tokens, counts that
    follow the aspect ratio, ``image_sizes``, BOS written by the template; stand-in
    processor (the real one needs torchvision)."""
    from transformers import Mistral3Config

    tok = _tokenizer(("<s>", "</s>", "<pad>", "[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]",
                      "[/INST]"), bos="<s>", eos="</s>", pad="<pad>")
    text = {"model_type": "mistral", **TEXT, **_ids(tok), "sliding_window": None}
    vision = {"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 2 * IMAGE_SIZE,
              "patch_size": PATCH_SIZE, "head_dim": 8}
    config = Mistral3Config(text_config=text, vision_config=vision, spatial_merge_size=2,
                            image_token_index=tok.convert_tokens_to_ids("[IMG]"),
                            tie_word_embeddings=False)
    return config, _stand_in_pixtral_processor(tok, merge=2)


# --------------------------------------------------------------------------- Llama 4
class StandInImageProcessor:
    """Stand-in for an image processor that needs torchvision (Llama 4's).

    Every image becomes one ``IMAGE_SIZE`` square tile (resized, scaled to [-1, 1]) with
    aspect ratio (1, 1): the layout the real processor gives an image no larger than one
    tile, i.e. ``<|image_start|><|image|><|patch|>xN<|image_end|>``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from transformers.image_processing_utils import BaseImageProcessor

        class _StandIn(BaseImageProcessor):  # type: ignore[misc]
            model_input_names = ["pixel_values"]

            def __call__(self, images: Any = None, **_: Any) -> Any:
                import numpy as np
                from transformers import BatchFeature

                flat = _flatten(images)
                pixels = [np.asarray(img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)),
                                     dtype=np.float32) / 127.5 - 1.0 for img in flat]
                data = {"pixel_values": torch.tensor(np.stack(pixels)).permute(0, 3, 1, 2),
                        "aspect_ratios": torch.ones(len(flat), 2, dtype=torch.long)}
                return BatchFeature(data=data)

            preprocess = __call__

        return _StandIn(*args, **kwargs)


def _flatten(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        return [img for item in images for img in _flatten(item)]
    return [images]


LLAMA4_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|header_start|>{{ message['role'] }}<|header_end|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|image|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|header_start|>assistant<|header_end|>\n\n{% endif %}"
)


def llama4() -> tuple[Any, Any]:
    """Llama 4: chunked-attention layers (chunk 8) with RoPE, a NoPE full-attention layer,
    query/key norms, MoE; stand-in image processor (the real one needs torchvision)."""
    from transformers import Llama4Config, Llama4Processor

    specials = ("<|begin_of_text|>", "<|eot|>", "<|finetune_right_pad|>", "<|image|>",
                "<|image_start|>", "<|image_end|>", "<|patch|>", "<|tile_x_separator|>",
                "<|tile_y_separator|>", "<|header_start|>", "<|header_end|>")
    tok = _tokenizer(specials, bos="<|begin_of_text|>", eos="<|eot|>",
                     pad="<|finetune_right_pad|>")
    text = {**TEXT, **_ids(tok), "num_hidden_layers": 4, "intermediate_size_mlp": 128,
            "num_local_experts": 2, "attention_chunk_size": 8, "no_rope_layers": [1, 1, 1, 0],
            "layer_types": ["chunked_attention"] * 3 + ["full_attention"]}
    # the pixel shuffle makes 4 x 32 channels, which the adapter MLP takes (intermediate)
    vision = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE,
              "vision_output_dim": 64, "projector_input_dim": 64, "projector_output_dim": 64,
              "pixel_shuffle_ratio": 0.5}
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("boi_token_index", "<|image_start|>"), ("eoi_token_index", "<|image_end|>"),
        ("image_token_index", "<|patch|>"))}
    config = Llama4Config(text_config=text, vision_config=vision, **ids)
    processor = Llama4Processor(
        image_processor=StandInImageProcessor(), tokenizer=tok, patch_size=PATCH_SIZE,
        pixel_shuffle_ratio=0.5, chat_template=LLAMA4_TEMPLATE)
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
    TinyFamily("aya_vision", aya_vision,
               note="sliding-window RoPE layers + a NoPE full layer (Cohere2), template BOS"),
    TinyFamily("qwen2_5_omni_thinker", qwen2_5_omni_thinker,
               note="M-RoPE, audio/video tokens, processor listed under another type"),
    TinyFamily("qwen3_vl", qwen3_vl, sharpen=1.5,
               note="interleaved M-RoPE, query/key norms, DeepStack features"),
    TinyFamily("mistral3", mistral3, stand_in=True,
               note="Pixtral rows, image_sizes, template BOS, stand-in processor"),
    TinyFamily("llama4", llama4, stand_in=True, sharpen=1.5,
               note="chunked and NoPE layers, MoE, stand-in image processor",
               upstream_error="'MoeCausalLMOutputWithPast' object has no attribute 'image_outputs'"),
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
    _wake_zero_weights(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _wake_zero_weights(model: torch.nn.Module) -> None:
    """Give zero-initialised gates and projections values, so the image reaches the LM."""
    with torch.no_grad():
        # Gates initialised at zero (Mllama's cross-attention gates) would keep the image
        # out of the language model altogether; open them so the image matters.
        for pname, param in model.named_parameters():
            if pname.endswith("_gate") and param.numel() == 1 and float(param) == 0:
                param.fill_(1.0)
            # likewise all-zero projection matrices (Gemma 3's mm_input_projection_weight)
            elif param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.02)


def load_family(name: str, attn_implementation: str = "sdpa", seed: int = 0,
                folder: str | os.PathLike[str] | None = None) -> Any:
    """A :class:`modprobe.LoadedModel` of a :data:`TINY_FAMILIES` entry (float32, CPU).

    From ``folder`` (written by :func:`build_family`) through :func:`modprobe.load`, or,
    for families with a stand-in processor part (which does not reload), built in memory
    with the same seed (same weights) and wrapped the way ``load`` wraps it.
    """
    import modprobe

    spec = TINY_FAMILIES[name]
    if not spec.stand_in:
        if folder is None:
            raise ValueError(f"{name} loads from a folder: pass folder=build_family(...)")
        return modprobe.load(folder, dtype="float32", device="cpu",
                             attn_implementation=attn_implementation)
    from nnsight import NNsight
    from transformers import AutoModelForImageTextToText

    from modprobe.adapters import adapter_for
    from modprobe.loading import LoadedModel

    config, processor = spec.build()
    torch.manual_seed(seed)
    module = AutoModelForImageTextToText.from_config(
        config, attn_implementation=attn_implementation).eval()
    _wake_zero_weights(module)
    return LoadedModel(model=NNsight(module), processor=processor,
                       adapter=adapter_for(module, processor), name=name, source="memory")
