"""A best-effort adapter for any image-text-to-text model whose config has an image token.

It locates the language model's decoder layers as the longest ``ModuleList`` named
``layers`` outside the vision tower, the final norm as the ``norm`` beside it, and the
unembedding from ``get_output_embeddings()``. Use a dedicated adapter when a family is
known; this one exists so that a new checkpoint works before someone writes one.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from modprobe.adapters.base import Adapter, AdapterError

_VISION_HINTS = ("vision", "visual", "image_encoder", "qformer", "audio", "multi_modal_projector")
_IMAGE_TOKEN_ATTRS = ("image_token_id", "image_token_index")
#: Names of the final norm beside the decoder layers (Llama-style, Persimmon/Fuyu, GPT-style).
_NORM_NAMES = ("norm", "final_layernorm", "final_norm", "ln_f")


def generic_adapter(model: torch.nn.Module, processor: Any | None = None) -> Adapter:
    """Build an :class:`Adapter` for ``model`` by inspecting its module tree and config.

    Args:
        model: The torch model (or its nnsight wrapper).
        processor: Its processor, if known. A processor without a chat template is taken
            to insert the image tokens itself (as InstructBLIP's does): prompts are then
            plain text and a batch cannot mix rows with and without images.

    Raises:
        AdapterError: if the config has no image token id, or no decoder layers, final norm
            or unembedding can be found.
    """
    model = getattr(model, "_module", model)
    config = model.config
    model_type = getattr(config, "model_type", type(model).__name__)
    image_attr = next((a for a in _IMAGE_TOKEN_ATTRS if getattr(config, a, None) is not None), None)
    if image_attr is None:
        raise AdapterError(
            f"cannot adapt {type(model).__name__} (model_type={model_type!r}): its config has "
            "no image_token_id / image_token_index, so image tokens cannot be told from text. "
            "modprobe needs an image-text-to-text model that marks image positions with a "
            "placeholder token; see docs/models.md to add a family."
        )
    candidates: list[tuple[int, str]] = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or not name.endswith("layers"):
            continue
        if any(hint in name for hint in _VISION_HINTS):
            continue
        candidates.append((len(module), name))
    if not candidates:
        raise AdapterError(f"cannot adapt {type(model).__name__}: no decoder `layers` list found")
    _, layers = max(candidates)
    parent = layers.rsplit(".", 1)[0] if "." in layers else ""
    norms = [f"{parent}.{n}" if parent else n for n in _NORM_NAMES]
    norm = next((n for n in norms if _resolve(model, n) is not None), None)
    if norm is None:
        raise AdapterError(f"cannot adapt {type(model).__name__}: no final norm beside its "
                           f"decoder layers (looked for {', '.join(norms)})")
    head = model.get_output_embeddings()
    unembed = next((n for n, m in model.named_modules() if m is head), None)
    if unembed is None:
        raise AdapterError(f"cannot adapt {type(model).__name__}: no output embeddings found")
    # Hybrid stacks (linear-attention or cross-attention layers between self-attention
    # ones) have the attention only in some layers: the name is the first any layer has.
    stack = _resolve(model, layers)
    attention = next((n for n in ("self_attn", "attention", "attn")
                      if any(hasattr(layer, n) for layer in stack)), None)
    if attention is None:
        raise AdapterError(f"cannot adapt {type(model).__name__}: no attention module "
                           "(self_attn, attention or attn) in any decoder layer")
    # Cross-attention layers (Mllama) run for a whole batch as soon as one row has an
    # image, and then change the rows without one: such rows differ batched and alone.
    cross_attention = any(hasattr(layer, "cross_attn") and not hasattr(layer, attention)
                          for layer in stack)
    templated = processor is None or bool(
        getattr(processor, "chat_template", None)
        or getattr(getattr(processor, "tokenizer", None), "chat_template", None))
    pixels = inspect.signature(model.forward).parameters.get("pixel_values")
    return Adapter(
        family=f"generic:{model_type}",
        model_types=(model_type,),
        layers=layers,
        final_norm=norm,
        unembed=unembed,
        attention=attention,
        image_token=image_attr,
        video_token="video_token_id" if getattr(config, "video_token_id", None) is not None else None,
        audio_token="audio_token_id" if getattr(config, "audio_token_id", None) is not None else None,
        extra_inputs=("mm_token_type_ids",),
        chat_template=templated,
        mixed_batches=templated and not cross_attention,
        requires_pixel_values=pixels is not None and pixels.default is inspect.Parameter.empty,
    )


def _resolve(model: Any, path: str) -> Any:
    obj = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj
