"""Default training data: the color world's image-heavy and text-heavy tasks.

Without a task folder the trainer trains on the color world's interference tasks
(:mod:`modprobe.data.color_tasks`): per generator group, one image-heavy item per visual
tier ("What color is the circle?" about the image) and one text-heavy item per
single-answer text tier (the description states the color). For the bundled organism
(32x32 images, a word-level vocabulary) that is the lowres variant with open answers,
exactly the organism's question format; for other models the paper's variant as
multiple choice. The items are built in memory (so every check runs before anything is
written) and written to ``RUN/data`` for the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Generator groups of the default training data (11 lowres items per group).
DEFAULT_GROUPS = 24


def world_variant(loaded: Any) -> tuple[str, str]:
    """``(variant, format)`` of the color world that fits a model."""
    from modprobe.perturb import processor_image_size

    small = max(processor_image_size(loaded.processor)) <= 64
    return ("lowres", "open") if small or loaded.name == "organism" else ("paper", "choice")


def world_items(loaded: Any, seed: int = 0, groups: int = DEFAULT_GROUPS) -> list[Any]:
    """Generate the default training items in memory, images attached.

    Args:
        loaded: The model to train; its image size picks the color world's variant
            (:func:`world_variant`).
        seed: Seed of the generator.
        groups: Generator groups (each gives several image- and text-heavy items).

    Returns:
        The ``TaskItem`` list.
    """
    from modprobe.data.color_tasks import color_task_items

    variant, fmt = world_variant(loaded)
    images, items = color_task_items(seed, groups, variant, fmt)
    by_path = dict(images)
    return [it.replaced(image=by_path[it.image_file]) if it.image_file else it for it in items]


def write_world_data(out: str | Path, loaded: Any, seed: int = 0,
                     groups: int = DEFAULT_GROUPS) -> Path:
    """Write the default items as a task folder (kept as is when it already exists).

    Args:
        out: The task folder.
        loaded: The model to train (picks the variant, see :func:`world_variant`).
        seed: Seed of the generator.
        groups: Generator groups.

    Returns:
        ``out``.
    """
    from modprobe.data.color_tasks import generate_color_tasks

    out = Path(out)
    if not (out / "items.jsonl").is_file():
        variant, fmt = world_variant(loaded)
        generate_color_tasks(out, groups=groups, seed=seed, variant=variant, fmt=fmt,
                             overwrite=True)
    return out
