"""Model-family adapters: one declarative :class:`Adapter` per family.

``adapter_for(model)`` picks the adapter of a loaded model by ``config.model_type`` and
falls back to :func:`generic_adapter` for other image-text-to-text models.
"""

from __future__ import annotations

from typing import Any

import torch

from modprobe.adapters.base import (
    CONDITIONS,
    Adapter,
    AdapterError,
    Condition,
    Prompt,
    get_submodule,
)
from modprobe.adapters.conditions import CONDITION_MODALITIES, MODALITIES, condition_modalities
from modprobe.adapters.generic import generic_adapter
from modprobe.adapters.instructblip import INSTRUCTBLIP
from modprobe.adapters.llava import LLAVA
from modprobe.adapters.llava_next import LLAVA_NEXT
from modprobe.adapters.media import Audio, MediaError, Video
from modprobe.adapters.qwen2_vl import QWEN2_5_VL, QWEN2_VL

#: Adapters of the families modprobe supports and tests, by family name.
ADAPTERS: dict[str, Adapter] = {
    a.family: a for a in (LLAVA, LLAVA_NEXT, QWEN2_VL, QWEN2_5_VL, INSTRUCTBLIP)
}


def adapter_for(model: torch.nn.Module, processor: Any | None = None) -> Adapter:
    """The adapter of a loaded model: by ``config.model_type``, else a generic one.

    Args:
        model: The torch model or its nnsight wrapper.
        processor: Its processor; helps the generic adapter tell how prompts are built.

    Raises:
        AdapterError: if the model is not a supported family and cannot be adapted generically.
    """
    model = getattr(model, "_module", model)
    model_type = getattr(model.config, "model_type", None)
    for adapter in ADAPTERS.values():
        if model_type in adapter.model_types:
            return adapter
    return generic_adapter(model, processor)


__all__ = [
    "ADAPTERS",
    "CONDITIONS",
    "CONDITION_MODALITIES",
    "MODALITIES",
    "Adapter",
    "AdapterError",
    "Audio",
    "Condition",
    "MediaError",
    "Prompt",
    "Video",
    "adapter_for",
    "condition_modalities",
    "generic_adapter",
    "get_submodule",
]
