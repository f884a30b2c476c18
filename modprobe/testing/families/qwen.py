"""Qwen2.5-Omni (thinker) and Qwen3-VL tiny models."""

from __future__ import annotations

from typing import Any

from modprobe.testing.families.common import (
    SCAFFOLD_WORDS,
    TEXT,
    token_config_ids,
)
from modprobe.testing.tokenizer import DEFAULT_WORDS, word_level_tokenizer

# --------------------------------------------------------------------------- Qwen2.5-Omni
#: Qwen/Qwen2.5-Omni-7B (the thinker: the text-generating half): ChatML with
#: ``<|vision_bos|><|IMAGE|><|vision_eos|>``, ``<|vision_bos|><|VIDEO|><|vision_eos|>`` and
#: ``<|audio_bos|><|AUDIO|><|audio_eos|>``; the processor also holds an audio feature
#: extractor and a video processor (none without torchvision).
OMNI_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif item['type'] == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif item['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


#: Words of the MMA clip questions (modprobe.data.clips_items) beyond the default ones,
#: so that the audio classes are single tokens of the tiny Omni vocabulary.
AV_WORDS: tuple[str, ...] = ("hum", "whistle", "bell", "drum", "sound", "video", "audio",
                             "heard", "shown", "options", ":")


def qwen2_5_omni_thinker() -> tuple[Any, Any]:
    """The tiny Qwen2.5-Omni thinker's config and processor.

    M-RoPE, image/video/audio tokens, a processor that ``PROCESSOR_MAPPING_NAMES`` lists
    under another model type (``qwen2_5_omni``).
    """
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
    tok = word_level_tokenizer((*DEFAULT_WORDS, *SCAFFOLD_WORDS, *AV_WORDS), specials,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               extra_special_tokens={
                                   "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                                   "audio_token": "<|AUDIO|>", "vision_bos_token": "<|vision_bos|>",
                                   "vision_eos_token": "<|vision_eos|>",
                                   "audio_bos_token": "<|audio_bos|>",
                                   "audio_eos_token": "<|audio_eos|>"})
    head_dim = TEXT["head_dim"]
    half = head_dim // 2
    text = {**TEXT, **token_config_ids(tok), "rope_parameters": {
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
    from transformers.utils import is_torchvision_available

    video_processor, processor_class = None, image_only_processor_class(Qwen2_5OmniProcessor)
    if is_torchvision_available():  # the video extra: a video processor of the same patches
        from transformers import Qwen2VLVideoProcessor

        video_processor, processor_class = Qwen2VLVideoProcessor(
            patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=16 ** 2,
            max_pixels=32 ** 2), Qwen2_5OmniProcessor
    processor = processor_class(
        image_processor=image_processor, video_processor=video_processor,
        feature_extractor=WhisperFeatureExtractor(feature_size=16), tokenizer=tok,
        chat_template=OMNI_TEMPLATE)
    return config, processor


# --------------------------------------------------------------------------- Qwen3-VL
def qwen3_vl() -> tuple[Any, Any]:
    """The tiny Qwen3-VL model's config and processor.

    Interleaved M-RoPE, query/key norms, DeepStack visual features added to early decoder
    layers; the ChatML template of Qwen2-VL.
    """
    from transformers import Qwen3VLConfig, Qwen3VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from modprobe.loading import image_only_processor_class
    from modprobe.testing.tiny import QWEN_CHAT_TEMPLATE, qwen_tokenizer

    tok = qwen_tokenizer()
    text = {**TEXT, **token_config_ids(tok), "rope_parameters": {
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
