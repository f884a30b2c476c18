"""InstructBLIP (``InstructBlipForConditionalGeneration``): ViT, Q-Former, Vicuna/Llama LM.

The language model is a whole causal LM inside the wrapper, so its parts live under
``language_model``. The processor has no chat template: it prepends the Q-Former's 32
query tokens (``<image>``) to every row itself, before any left padding. Every row of a
batch must then have an image, or none. The forward pass always takes pixel values: a
text-only batch gets all-zero ones that, with no ``<image>`` token to fill, never reach
the language model.
"""

from modprobe.adapters.base import Adapter

INSTRUCTBLIP = Adapter(
    family="instructblip",
    model_types=("instructblip",),
    layers="language_model.model.layers",
    final_norm="language_model.model.norm",
    unembed="language_model.lm_head",
    chat_template=False,
    mixed_batches=False,
    requires_pixel_values=True,
)
