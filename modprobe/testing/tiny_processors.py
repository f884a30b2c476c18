"""Tokenizers and processors of the tiny models, with chat templates shaped like the real ones.

Each family's processor is its real transformers class (``LlavaProcessor``,
``Qwen2VLProcessor``, ...) around a word-level tokenizer (:mod:`modprobe.testing.tokenizer`)
and the family's PIL image processor, sized so that the tiny vision towers of
:mod:`modprobe.testing.tiny` see small images: a fixed number of image tokens for LLaVA-1.5
and InstructBLIP, a size-dependent number for LLaVA-NeXT (any-resolution tiling) and
Qwen-VL (one token per 2x2 patches of the resized image).
"""

from __future__ import annotations

from typing import Any

from modprobe.testing.tokenizer import DEFAULT_WORDS, word_level_tokenizer

#: Families with a tiny model, in the order tests parametrize them.
FAMILIES: tuple[str, ...] = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "instructblip")

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
    check_family(family)
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
    check_family(family)
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer(family)
    if family == "llava":
        return build_llava_processor(tokenizer)
    if family == "llava_next":
        return build_llava_next_processor(tokenizer)
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return build_qwen_processor(family, tokenizer)
    return build_instructblip_processor(tokenizer)


def check_family(family: str) -> None:
    """Refuse a family that has no tiny model.

    Args:
        family: The family's name.

    Raises:
        ValueError: naming the families there are, when ``family`` is not one of them.
    """
    if family not in FAMILIES:
        raise ValueError(f"no tiny model for family {family!r}; use one of {', '.join(FAMILIES)}")
