"""LLaVA-NeXT / LLaVA-1.6 (``LlavaNextForConditionalGeneration``).

Like LLaVA-1.5, but "any-resolution" tiling gives a variable number of ``<image>`` tokens
per image (about 2,000-2,900 for a 7B model), so image spans differ in length per row.
"""

from modprobe.adapters.base import Adapter

LLAVA_NEXT = Adapter(family="llava_next", model_types=("llava_next",))
