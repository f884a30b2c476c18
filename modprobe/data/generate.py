"""Writing a whole color-recognition dataset folder (either variant)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from modprobe.data import colors, lowres
from modprobe.data.dataset import ITEMS_FILE, write_dataset
from modprobe.data.render import png_bytes
from modprobe.data.schema import GROUPS, Item
from modprobe.io import write_bytes

#: Bumped whenever the same arguments would produce different bytes.
GENERATOR_VERSION = "2"
VARIANTS: tuple[str, ...] = ("paper", "lowres")

GroupFn = Callable[[int, int, list[int], list[int], list[str]],
                   tuple[list[tuple[str, Image.Image]], list[Item]]]


def variant_tiers(variant: str) -> tuple[list[int], list[int]]:
    """All visual and text tiers of a variant."""
    if variant == "paper":
        return list(range(len(colors.VISUAL_TIERS))), list(colors.TEXT_TIERS)
    if variant == "lowres":
        return list(range(len(lowres.LOWRES_TIERS))), list(lowres.LOWRES_TEXT_TIERS)
    raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")


def generate_colors(out: str | Path, groups: int, seed: int, variant: str = "paper",
                    tiers: Sequence[int] | None = None, text_tiers: Sequence[int] | None = None,
                    kinds: Sequence[str] = GROUPS, overwrite: bool = False,
                    progress: bool = False) -> Path:
    """Render the color-recognition dataset into ``out``.

    Images are written first, then ``dataset.json``, then ``items.jsonl`` (each through a
    temporary file and ``os.replace``), so an interrupted run never leaves a partial
    ``items.jsonl``. A group's items depend only on ``(seed, group, tier)``: more groups
    or fewer tiers never change the items that both runs share.

    Args:
        out: Output folder (created if needed).
        groups: Number of groups (one target shape, image color and text color each).
        seed: Seed; the same arguments give the same bytes.
        variant: ``"paper"`` (docs/science.md's tiers) or ``"lowres"`` (32x32, model organism).
        tiers: Visual tiers to render (default all of the variant's).
        text_tiers: Text tiers (default all of the variant's).
        kinds: Item kinds among conflict, text_irrelevant, image_irrelevant.
        overwrite: Replace an existing dataset in ``out``.
        progress: Show a progress bar.

    Returns:
        The path of the written ``items.jsonl``.
    """
    all_vis, all_text = variant_tiers(variant)
    vis = sorted(set(tiers)) if tiers is not None else all_vis
    txt = sorted(set(text_tiers)) if text_tiers is not None else all_text
    for name, chosen, allowed in (("visual", vis, all_vis), ("text", txt, all_text)):
        bad = [t for t in chosen if t not in allowed]
        if bad or not chosen:
            raise ValueError(f"{variant} variant: {name} tiers must be a non-empty subset of "
                             f"{allowed[0]}..{allowed[-1]}, got {list(chosen)}")
    colors.check_kinds(list(kinds))
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    out = Path(out)
    if (out / ITEMS_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out / ITEMS_FILE} exists; pass overwrite=True (--overwrite) "
                              "to replace it")
    group_fn: GroupFn = colors.group_items if variant == "paper" else lowres.group_items

    indices: Any = range(groups)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"{variant} groups", unit="group")
    items: list[Item] = []
    n_images = 0
    for index in indices:
        images, group_items = group_fn(seed, index, vis, txt, list(kinds))
        for relative, image in images:
            write_bytes(out / relative, png_bytes(image))
        n_images += len(images)
        items.extend(group_items)
    info = {
        "name": "modprobe-colors" if variant == "paper" else "modprobe-colors-lowres",
        "task": "color", "variant": variant, "seed": seed,
        "generator": "modprobe.data", "generator_version": GENERATOR_VERSION,
        "groups": groups, "visual_tiers": vis, "text_tiers": txt, "kinds": list(kinds),
        "n_images": n_images,
    }
    return write_dataset(out, items, info)
