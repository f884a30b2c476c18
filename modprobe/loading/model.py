"""The loaded model: the nnsight wrapper with its processor and adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modprobe.adapters import Adapter, Prompt
from modprobe.spans import ModalitySpans


@dataclass
class LoadedModel:
    """A model ready for modprobe: the nnsight wrapper, its processor and adapter.

    Attributes:
        model: The nnsight wrapper (``model.trace(**batch)`` runs an intervention).
        processor: The transformers processor (tokenizer + image processor).
        adapter: Where this family keeps its parts and how its prompts are built.
        name: What the user asked for (alias, hub id or folder).
        source: The resolved hub id or local folder.
        remote: Where traces run: ``False`` here, ``True`` on NDIF, ``"local"`` through
            nnsight's local simulation of a remote run (see :func:`load`).
    """

    model: Any
    processor: Any
    adapter: Adapter
    name: str
    source: str
    remote: bool | str = False

    @property
    def module(self) -> torch.nn.Module:
        """The underlying torch model."""
        return getattr(self.model, "_module", self.model)

    @property
    def config(self) -> Any:
        """The transformers config of the model."""
        return self.module.config

    @property
    def device(self) -> torch.device:
        """Where inputs go: the model's device.

        Under a ``device_map``, the first device that holds layers (accelerate moves
        activations between the others). Remote models (on the meta device here) take
        their inputs on the CPU.
        """
        if self.remote is True:
            return torch.device("cpu")
        placed = getattr(self.module, "hf_device_map", None)
        if placed:
            for where in placed.values():
                if where not in ("disk", "meta"):
                    return torch.device(where if not isinstance(where, int) else f"cuda:{where}")
            return torch.device("cpu")
        return next(self.module.parameters()).device

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer (the processor itself for text-only ones)."""
        return getattr(self.processor, "tokenizer", self.processor)

    def encode(self, prompts: list[Prompt], padding_side: str = "left") -> dict[str, torch.Tensor]:
        """Tokenize prompts with the family's chat template, on the model's device.

        Args:
            prompts: The prompts of one batch.
            padding_side: ``"left"`` (generation) or ``"right"``.

        Returns:
            The model's inputs (``input_ids``, ``attention_mask``, pixel values...).
        """
        return self.adapter.encode(self.processor, prompts, padding_side=padding_side,
                                   device=self.device)

    def spans(self, batch: dict[str, torch.Tensor]) -> ModalitySpans:
        """Spans of an encoded batch.

        Args:
            batch: What :meth:`encode` returned (the context span needs its
                ``context_mask``).

        Returns:
            Where each modality's tokens sit in each row.
        """
        return self.adapter.spans(self.config, batch["input_ids"], batch.get("attention_mask"),
                                  batch.get("context_mask"))
