"""The color world's interference tasks, out of the box.

From the color-recognition generator (either variant) come two tasks:

- **image-heavy** (``relevant="image"``): the image and the question "What color is the
  circle?"; the answer is the drawn color; the text is what a perturbation changes
  (unrelated facts, a misleading description "The circle is blue.", OCR-like noise).
- **text-heavy** (``relevant="text"``): the description "The circle is red." (or its
  one-hop and world-knowledge forms) and the question, with no image; the answer is the
  described color; the image is what a perturbation adds (random pixels, an irrelevant
  scene without the asked shape, a black or white canvas).

Both come as open answer or multiple choice. Every item of one generator group shares a
``cluster`` label, so intervals resample groups, not items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modprobe.data import colors, lowres, texts
from modprobe.data.generate import GENERATOR_VERSION, variant_tiers
from modprobe.data.palette import COLORS
from modprobe.data.render import png_bytes
from modprobe.data.tasks import FORMATS, TaskItem, seeded_rng, write_tasks
from modprobe.io import write_bytes

#: How a misleading description of the color world names a wrong color.
MISLEADING_TEMPLATE = "The {subject} is {option}."
#: Text tiers whose description names exactly one color, per variant.
SINGLE_ANSWER_TEXT_TIERS: dict[str, tuple[int, ...]] = {"paper": (0, 1, 2), "lowres": (0, 1, 2)}


def _options(seed: int, key: str, gold: str, n_options: int) -> list[str]:
    """``n_options`` colors including ``gold``, in a seeded order."""
    rng = seeded_rng(seed, "options", key)
    others = [c for c in COLORS if c != gold]
    chosen = [others[int(i)] for i in rng.choice(len(others), n_options - 1, replace=False)]
    chosen.append(gold)
    return [chosen[int(i)] for i in rng.permutation(len(chosen))]


def color_task_items(seed: int, groups: int, variant: str = "lowres", fmt: str = "choice",
                     n_options: int = 4, tiers: list[int] | None = None,
                     text_tiers: list[int] | None = None,
                     ) -> tuple[list[tuple[str, Any]], list[TaskItem]]:
    """Images and items of the color world's image-heavy and text-heavy tasks.

    Args:
        seed: Generator seed (same seed, same items).
        groups: Generator groups (one shape, image color, text color each).
        variant: ``"lowres"`` (32x32, the organism's) or ``"paper"``.
        fmt: ``"choice"`` (options listed, A-D) or ``"open"`` (one-word answer).
        n_options: Options per multiple-choice question (2..6).
        tiers: Visual tiers of the image-heavy items (default all of the variant's).
        text_tiers: Text tiers of the text-heavy items (default those naming one color).

    Returns:
        ``(relative path, PIL image)`` pairs and the items (image-heavy first per group).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not 2 <= n_options <= len(COLORS):
        raise ValueError(f"n_options must lie in 2..{len(COLORS)}, got {n_options}")
    all_vis, _ = variant_tiers(variant)
    vis = list(tiers) if tiers is not None else all_vis
    single = SINGLE_ANSWER_TEXT_TIERS[variant]
    txt = list(text_tiers) if text_tiers is not None else list(single)
    bad = [t for t in txt if t not in single]
    if bad:
        raise ValueError(f"text tiers {bad} name more than one color; a text-heavy task "
                         f"needs one answer: use tiers among {list(single)}")
    group_fn = colors.group_items if variant == "paper" else lowres.group_items
    images: list[tuple[str, Any]] = []
    items: list[TaskItem] = []
    for index in range(groups):
        group_images, conflict = group_fn(seed, index, vis, txt, ["conflict"])
        images += group_images
        first_tier = {}
        for it in conflict:  # one image-heavy item per visual tier
            first_tier.setdefault(it.d_v, it)
        for d_v, it in first_tier.items():
            items.append(_item(f"{it.extra['cluster']}-v{d_v:02d}-image", it, "image", seed,
                               fmt, n_options, image_file=it.image))
        for it in conflict:  # one text-heavy item per text tier (the text ignores d_v)
            if it.d_v == vis[0]:
                items.append(_item(f"{it.extra['cluster']}-t{it.d_t}-text", it, "text", seed,
                                   fmt, n_options, d_t=it.d_t))
    return images, items


def _item(item_id: str, it: Any, relevant: str, seed: int, fmt: str, n_options: int,
          **extra: Any) -> TaskItem:
    gold = it.answer_vision if relevant == "image" else it.answer_text
    image_file = extra.pop("image_file", None)
    question = texts.question(it.shape) if fmt == "open" else f"What color is the {it.shape}?"
    return TaskItem(
        id=item_id, question=question, answer=gold, relevant=relevant,
        context=it.context if relevant == "text" else None,
        options=_options(seed, item_id, gold, n_options) if fmt == "choice" else list(COLORS),
        format=fmt, subject=it.shape, cluster=it.extra["cluster"], task="color",
        misleading_template=MISLEADING_TEMPLATE, image_file=image_file,
        extra={"variant": it.extra["variant"], "d_v": it.d_v, **extra})


def generate_color_tasks(out: str | Path, groups: int, seed: int = 0, variant: str = "lowres",
                         fmt: str = "choice", n_options: int = 4, overwrite: bool = False,
                         **tier_options: Any) -> Path:
    """Write the color world's interference tasks into a task folder.

    Images first, then ``dataset.json``, then ``items.jsonl`` (each atomic), so an
    interrupted call never leaves a partial ``items.jsonl``.

    Args:
        out: The task folder.
        groups: Generator groups (one shape, image color, text color each).
        seed: Generator seed.
        variant: ``"lowres"`` (32x32, the organism's) or ``"paper"``.
        fmt: ``"choice"`` or ``"open"``.
        n_options: Options per multiple-choice question (2..6).
        overwrite: Replace an existing ``items.jsonl`` (else ``FileExistsError``).
        **tier_options: ``tiers`` and ``text_tiers``, as in :func:`color_task_items`.

    Returns:
        The path of ``items.jsonl``.
    """
    out = Path(out)
    if (out / "items.jsonl").exists() and not overwrite:
        raise FileExistsError(f"{out / 'items.jsonl'} exists; pass overwrite=True (--overwrite) to "
                              "replace it")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    images, items = color_task_items(seed, groups, variant, fmt, n_options, **tier_options)
    for relative, image in images:
        write_bytes(out / relative, png_bytes(image))
    info = {"name": f"modprobe-color-tasks-{variant}", "task": "color", "variant": variant,
            "format": fmt, "n_options": n_options, "seed": seed, "groups": groups,
            "generator": "modprobe.data.color_tasks", "generator_version": GENERATOR_VERSION}
    return write_tasks(out, items, info)
