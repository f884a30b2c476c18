"""Mllama, Idefics3 and Llama 4 tiny models (Llama-3-style tokenizers)."""

from __future__ import annotations

from typing import Any

import torch

from modprobe.testing.families.common import (
    IMAGE_SIZE,
    PATCH_SIZE,
    SIGLIP,
    TEXT,
    family_tokenizer,
    flatten_images,
    llama3_tokenizer,
    token_config_ids,
)

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


def mllama() -> tuple[Any, Any]:
    """Mllama (Llama 3.2 Vision): layer 1 of 3 cross-attends to the image tiles."""
    from transformers import MllamaConfig, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tok = llama3_tokenizer()
    text = {**TEXT, **token_config_ids(tok), "cross_attention_layers": [1]}
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
    """The tiny Idefics3 model's config and processor (SmolVLM is the same model).

    Per-image tiling, pixel-shuffle connector, ``pixel_attention_mask``, BOS written by
    the template.
    """
    from transformers import Idefics3Config, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    grid = tuple(f"<row_{i}_col_{j}>" for i in range(1, 5) for j in range(1, 5))
    tok = llama3_tokenizer(extra=("<end_of_utterance>", "<image>", "<fake_token_around_image>",
                                   "<global-img>", *grid))
    text = {"model_type": "llama", **TEXT, **token_config_ids(tok)}
    config = Idefics3Config(text_config=text, vision_config={**SIGLIP}, scale_factor=2,
                            image_token_id=tok.convert_tokens_to_ids("<image>"))
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE})
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, chat_template=IDEFICS3_TEMPLATE,
        image_seq_len=(IMAGE_SIZE // PATCH_SIZE) ** 2 // 4)
    return config, processor


# --------------------------------------------------------------------------- Llama 4
class StandInImageProcessor:
    """Stand-in for an image processor that needs torchvision (Llama 4's).

    Every image becomes one ``IMAGE_SIZE`` square tile (resized, scaled to [-1, 1]) with
    aspect ratio (1, 1): the layout the real processor gives an image no larger than one
    tile, i.e. ``<|image_start|><|image|><|patch|>xN<|image_end|>``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Build the stand-in as a real ``BaseImageProcessor`` subclass instance.

        Args:
            *args: Passed to the processor's constructor.
            **kwargs: Passed to the processor's constructor.

        Returns:
            The stand-in image processor.
        """
        from transformers.image_processing_utils import BaseImageProcessor

        class _StandIn(BaseImageProcessor):  # type: ignore[misc]
            model_input_names = ["pixel_values"]  # noqa: RUF012 - transformers' own type

            def __call__(self, images: Any = None, **_: Any) -> Any:
                import numpy as np
                from transformers import BatchFeature

                flat = flatten_images(images)
                pixels = [np.asarray(img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)),
                                     dtype=np.float32) / 127.5 - 1.0 for img in flat]
                data = {"pixel_values": torch.tensor(np.stack(pixels)).permute(0, 3, 1, 2),
                        "aspect_ratios": torch.ones(len(flat), 2, dtype=torch.long)}
                return BatchFeature(data=data)

            preprocess = __call__

        return _StandIn(*args, **kwargs)


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
    """The tiny Llama 4 model's config and processor.

    Chunked-attention layers (chunk 8) with RoPE, a NoPE full-attention layer, query/key
    norms, MoE; stand-in image processor (the real one needs torchvision).
    """
    from transformers import Llama4Config, Llama4Processor

    specials = ("<|begin_of_text|>", "<|eot|>", "<|finetune_right_pad|>", "<|image|>",
                "<|image_start|>", "<|image_end|>", "<|patch|>", "<|tile_x_separator|>",
                "<|tile_y_separator|>", "<|header_start|>", "<|header_end|>")
    tok = family_tokenizer(specials, bos="<|begin_of_text|>", eos="<|eot|>",
                     pad="<|finetune_right_pad|>")
    text = {**TEXT, **token_config_ids(tok), "num_hidden_layers": 4, "intermediate_size_mlp": 128,
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
