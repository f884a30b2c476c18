"""Qwen2-VL and Qwen2.5-VL (``Qwen2VLForConditionalGeneration``, ``Qwen2_5_VL...``).

Images become a variable number of ``<|image_pad|>`` tokens wrapped in
``<|vision_start|>``/``<|vision_end|>`` (those wrappers count as text). The forward pass
needs the processor's ``mm_token_type_ids`` to build the 3-D (M-RoPE) rotary positions.
Some layers may use sliding-window attention (``config.layer_types``).
"""

from modprobe.adapters.base import Adapter

QWEN2_VL = Adapter(
    family="qwen2_vl",
    model_types=("qwen2_vl",),
    video_token="video_token_id",
    extra_inputs=("mm_token_type_ids",),
)

QWEN2_5_VL = Adapter(
    family="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    video_token="video_token_id",
    extra_inputs=("mm_token_type_ids",),
)
