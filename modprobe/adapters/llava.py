"""LLaVA-1.5 (``LlavaForConditionalGeneration``): a CLIP tower, a projector, a Llama LM.

576 ``<image>`` tokens per 336px image; the chat template puts the image before the text.
"""

from modprobe.adapters.base import Adapter

LLAVA = Adapter(family="llava", model_types=("llava",))
