"""Which weights a fine-tuning run trains: LoRA adapters on the language model, or everything.

LoRA follows MMA-Bench's recipe by default: rank-8 adapters on the query and value
projections (``q_proj``, ``v_proj``) of the *language model's* decoder layers only. The
vision (and audio) towers often use the same module names (CLIP's attention has a
``q_proj`` too), so targets are resolved to full module names under the adapter's decoder
layers, never by suffix alone: a tower is never touched.

``peft.get_peft_model`` injects the adapters in place: the model keeps its class and
module paths, so the family adapter, the capture and the losses see the same model with
LoRA layers inside its projections; the returned ``PeftModel`` only saves them
(``save_pretrained``: ``adapter_config.json`` + ``adapter_model.safetensors``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from modprobe.errors import ModprobeError

#: The module names MMA-Bench tunes (W_Q and W_V).
DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "v_proj")


class LoraTargetError(ModprobeError, ValueError):
    """Requested LoRA target modules do not exist in the language model."""


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters (peft's names).

    Attributes:
        rank: Adapter rank ``r``.
        alpha: Scaling numerator (``lora_alpha``; the update is scaled by ``alpha / rank``).
        dropout: Dropout on the adapter's input.
        targets: Leaf names of the language model's linear layers to adapt.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS


def language_linear_names(loaded: Any) -> dict[str, list[str]]:
    """Full names of the language model's linear layers, grouped by leaf name.

    Only modules under the adapter's decoder layers (``adapter.layers``) count; towers
    and projectors are elsewhere.
    """
    prefix = loaded.adapter.layers + "."
    found: dict[str, list[str]] = {}
    for name, module in loaded.module.named_modules():
        if name.startswith(prefix) and isinstance(module, torch.nn.Linear):
            found.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return found


def resolve_targets(loaded: Any, targets: Sequence[str]) -> list[str]:
    """Full module names of the LoRA targets, or a clear error listing what exists.

    Args:
        loaded: The :class:`modprobe.LoadedModel` to adapt.
        targets: Short names of the linear layers (``q_proj``, ``v_proj``...).

    Returns:
        The full names of the language model's linear layers that match.

    Raises:
        LoraTargetError: a target name matches no linear layer of the language model.
    """
    available = language_linear_names(loaded)
    missing = [t for t in targets if t not in available]
    if missing or not targets:
        raise LoraTargetError(
            f"LoRA target module(s) {', '.join(missing) or '(none given)'} not found in the "
            f"language model ({loaded.adapter.layers}); its linear layers are: "
            f"{', '.join(sorted(available))}")
    return [name for t in targets for name in available[t]]


def apply_lora(loaded: Any, settings: LoraSettings, base: str) -> Any:
    """Freeze the model and inject LoRA adapters into the chosen language-model layers.

    Args:
        loaded: The model; its module gains LoRA layers in place.
        settings: Rank, alpha, dropout, target leaf names.
        base: What ``modprobe.load`` takes to rebuild the base model (alias or folder),
            recorded in ``adapter_config.json``.

    Returns:
        The ``peft.PeftModel`` around ``loaded.module`` (use it to save the adapters).
    """
    from peft import LoraConfig, get_peft_model

    names = resolve_targets(loaded, settings.targets)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                        lora_dropout=settings.dropout, target_modules=names, bias="none")
    with warnings.catch_warnings():
        # peft asks transformers about gradient checkpointing through a deprecated name.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        # get_peft_model freezes every base weight and leaves only the adapters trainable.
        model = get_peft_model(loaded.module, config)
    # peft records the module's checkpoint folder; modprobe.load wants what the user gave
    # (an alias stays an alias), written by save_pretrained into adapter_config.json.
    model.peft_config["default"].base_model_name_or_path = base
    return model


def trainable_parameters(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Parameters that require grad, by name, in a stable order."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}
