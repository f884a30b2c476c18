"""The organism's architecture and training recipe, as one dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modprobe.errors import ModprobeError


@dataclass(frozen=True)
class OrganismConfig:
    """Everything that decides the trained organism, besides the data generator's code.

    The defaults are the recipe of the shipped checkpoint (``docs/organism.md``).

    Attributes:
        seed: Seeds torch (weights, dropout-free training noise) and the data order.
        steps: Optimizer steps.
        batch_size: Training examples per step (unimodal and agreeing, mixed).
        learning_rate: Peak AdamW learning rate (after linear warm-up, cosine decay to 10%).
        warmup_steps: Steps of linear warm-up.
        weight_decay: AdamW weight decay.
        grad_clip: Max global gradient norm.
        image_size: Side of the square input image in pixels.
        patch_size: CLIP patch side; ``(image_size / patch_size) ** 2`` image tokens.
        vision_width: CLIP tower hidden size.
        vision_layers: CLIP tower depth.
        vision_heads: CLIP attention heads.
        text_width: Llama hidden size.
        text_layers: Llama depth.
        text_heads: Llama attention heads.
        mlp_ratio: MLP hidden size as a multiple of the width (both towers).
        max_positions: Llama position budget (prompt + image tokens).
        eval_every: Evaluate the held-out probe sets every this many steps.
        probe_items: Items per held-out probe set.
        probe_seed: Seed of the held-out probe sets (disjoint from the training stream).
        threads: torch CPU threads. Weights are reproducible per seed *and* thread count
            (the split changes float summation order); the shipped checkpoint used 1.
        vis_tiers: Visual tiers ``lv`` of the lowres generator trained on (None: all).
        text_tiers: Text tiers ``lt`` trained on (None: all).
        condition_weights: Share of vision-only, text-only and agreeing multi examples.
    """

    seed: int = 0
    steps: int = 1500
    batch_size: int = 48
    learning_rate: float = 3e-3
    warmup_steps: int = 150
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    text_width: int = 128
    text_layers: int = 4
    text_heads: int = 4
    mlp_ratio: int = 4
    max_positions: int = 128
    eval_every: int = 100
    probe_items: int = 64
    probe_seed: int = 10_000
    threads: int = 1
    vis_tiers: tuple[int, ...] | None = None
    text_tiers: tuple[int, ...] | None = None
    condition_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        """Refuse values that would train nothing or report a model that is not trained."""
        for name in ("steps", "batch_size", "image_size", "patch_size", "vision_width",
                     "vision_layers", "vision_heads", "text_width", "text_layers", "text_heads",
                     "mlp_ratio", "max_positions", "eval_every", "probe_items", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModprobeError(f"organism config: {name} must be a positive integer, "
                                    f"got {value!r}")
        for name in ("warmup_steps", "seed", "probe_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ModprobeError(f"organism config: {name} must be an integer >= 0, "
                                    f"got {value!r}")
        if not (isinstance(self.learning_rate, (int, float)) and
                0 < self.learning_rate < math.inf):
            raise ModprobeError(f"organism config: learning_rate must be a positive number, "
                                f"got {self.learning_rate!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (saved beside the checkpoint as ``organism_config.json``)."""
        return asdict(self)
