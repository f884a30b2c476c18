"""Image perturbations of text-heavy items: random pixels, an irrelevant image, black, white.

Each returns the item with its image replaced (or, for an item without one, added). The
size is ``size=(width, height)``; :func:`processor_image_size` gives the size a model's
processor feeds its vision tower, so the perturbed image is not resized again. Without a
size, the item's own image size is used, else :data:`DEFAULT_SIZE`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from modprobe.data.palette import RGB
from modprobe.data.render import SHAPES, draw_shape
from modprobe.data.tasks import TaskItem
from modprobe.perturb.registry import PerturbationError

#: Size used when neither a size nor the item's image gives one (LLaVA-1.5's input).
DEFAULT_SIZE: tuple[int, int] = (336, 336)
#: Side a dynamic-resolution processor (Qwen-VL) is given, before its pixel bounds.
DYNAMIC_SIDE = 448
#: File types RI reads from a folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif",
                                   ".tiff")


def processor_image_size(processor: Any) -> tuple[int, int]:
    """``(width, height)`` of the images a model's processor feeds its vision tower.

    Fixed-size processors (LLaVA, LLaVA-NeXT's base tile, InstructBLIP, Gemma3,
    PaliGemma): their crop size, else their resize size; a square resized by its longest
    edge (Idefics3): that edge. Dynamic-resolution ones (Qwen-VL): a square of
    :data:`DYNAMIC_SIDE` pixels rounded to the patch grid and kept inside the processor's
    pixel bounds, which the processor then leaves as it is.

    Args:
        processor: A transformers processor, its ``image_processor``, or a
            :class:`modprobe.LoadedModel`.
    """
    processor = getattr(processor, "processor", processor)
    ip = getattr(processor, "image_processor", processor)
    size, crop = getattr(ip, "size", None), getattr(ip, "crop_size", None)

    def get(obj: Any, key: str) -> Any:
        """Field ``key`` of a size object, whether a dict or attributes.

        Args:
            obj: The processor's ``size`` or ``crop_size``.
            key: ``height``, ``width``, ``shortest_edge``...

        Returns:
            The value, or None.
        """
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    if crop is not None and getattr(ip, "do_center_crop", False) and get(crop, "height"):
        return int(get(crop, "width")), int(get(crop, "height"))
    if size is not None and get(size, "height") and get(size, "width"):
        return int(get(size, "width")), int(get(size, "height"))
    patch, merge = getattr(ip, "patch_size", None), getattr(ip, "merge_size", None)
    if patch and merge:
        factor = int(patch) * int(merge)
        low = getattr(ip, "min_pixels", None) or (get(size, "shortest_edge") if size else None)
        high = getattr(ip, "max_pixels", None) or (get(size, "longest_edge") if size else None)
        side = max(factor, round(DYNAMIC_SIDE / factor) * factor)
        if high:
            side = min(side, math.floor(math.sqrt(high) / factor) * factor)
        if low:
            side = max(side, math.ceil(math.sqrt(low) / factor) * factor)
        return side, side
    for key in ("shortest_edge", "longest_edge"):  # resized square: that side both ways
        if size is not None and get(size, key):
            side = int(get(size, key))
            return side, side
    raise PerturbationError(f"cannot tell the image size of {type(ip).__name__}; pass size=(w, h)")


def _size(item: TaskItem, size: tuple[int, int] | int | None) -> tuple[int, int]:
    if size is None:
        return item.image.size if item.image is not None else DEFAULT_SIZE
    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if width < 1 or height < 1:
        raise PerturbationError(f"image size must be positive, got {size}")
    return width, height


def random_pixels(item: TaskItem, rng: np.random.Generator,
                  size: tuple[int, int] | int | None = None) -> TaskItem:
    """RP: an image whose every pixel and channel is uniform in 0..255.

    Args:
        item: The task item.
        rng: Draws the pixels.
        size: ``(width, height)`` or one side of the image (default: the item's image
            size, or :data:`DEFAULT_SIZE` without one).

    Returns:
        The item with the new image.
    """
    width, height = _size(item, size)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return item.replaced(image=Image.fromarray(pixels, "RGB"))


def full_black(item: TaskItem, rng: np.random.Generator,
               size: tuple[int, int] | int | None = None) -> TaskItem:
    """FB: an all-black canvas.

    Args:
        item: The task item.
        rng: Unused.
        size: ``(width, height)`` or one side of the image (default: the item's image
            size, or :data:`DEFAULT_SIZE` without one).

    Returns:
        The item with the new image.
    """
    return item.replaced(image=Image.new("RGB", _size(item, size), (0, 0, 0)))


def full_white(item: TaskItem, rng: np.random.Generator,
               size: tuple[int, int] | int | None = None) -> TaskItem:
    """FW: an all-white canvas.

    Args:
        item: The task item.
        rng: Unused.
        size: ``(width, height)`` or one side of the image (default: the item's image
            size, or :data:`DEFAULT_SIZE` without one).

    Returns:
        The item with the new image.
    """
    return item.replaced(image=Image.new("RGB", _size(item, size), (255, 255, 255)))


def irrelevant_image(item: TaskItem, rng: np.random.Generator,
                     size: tuple[int, int] | int | None = None,
                     folder: str | Path | None = None) -> TaskItem:
    """RI: a real but irrelevant image.

    With ``folder``: one of its images (chosen by the seed among the sorted usable
    files, the item's own image file excluded), scaled and center-cropped to the size.
    Without: a generated scene of 2-4 colored shapes on a light background that never
    draws the asked object (``item.subject``).

    Args:
        item: The task item.
        rng: Picks the file, or draws the scene.
        size: ``(width, height)`` or one side (default: the item's image size).
        folder: A folder of images to draw from (None: a generated scene).

    Returns:
        The item with the irrelevant image.
    """
    width, height = _size(item, size)
    if folder is not None:
        files = [f for f in usable_images(str(folder))
                 if item.image_file is None or Path(f).name != Path(item.image_file).name]
        if not files:
            raise PerturbationError(f"RI: folder {folder} has no usable image other than the "
                                    f"item's own")
        with Image.open(files[int(rng.integers(len(files)))]) as image:
            picked = ImageOps.fit(image.convert("RGB"), (width, height),
                                  method=Image.Resampling.BICUBIC)
        return item.replaced(image=picked)
    return item.replaced(image=scene_without(rng, (width, height), item.subject))


def scene_without(rng: np.random.Generator, size: tuple[int, int],
                  subject: str | None) -> Image.Image:
    """Draw a scene of 2-4 shapes in palette colors on a light gray background.

    Args:
        rng: Draws the shapes, colors and positions.
        size: ``(width, height)`` of the image.
        subject: The asked object: no shape of that name is drawn (any shape when the
            subject is not a shape).

    Returns:
        The RGB image.
    """
    width, height = size
    shapes = [s for s in SHAPES if s != (subject or "").casefold()]
    colors = list(RGB.values())
    scale = 4 if min(width, height) < 128 else 1  # supersample small canvases
    canvas = Image.new("RGB", (width * scale, height * scale), (235, 235, 235))
    draw = ImageDraw.Draw(canvas)
    side = min(width, height) * scale
    for _ in range(int(rng.integers(2, 5))):
        box = int(side * rng.uniform(0.25, 0.5))
        left = int(rng.integers(0, width * scale - box + 1))
        top = int(rng.integers(0, height * scale - box + 1))
        draw_shape(draw, shapes[int(rng.integers(len(shapes)))], left, top, box,
                   colors[int(rng.integers(len(colors)))])
    if scale > 1:
        canvas = canvas.resize((width, height), Image.Resampling.BOX)
    return canvas


@functools.lru_cache(maxsize=16)
def usable_images(folder: str) -> tuple[str, ...]:
    """Sorted paths of the images in ``folder`` (not recursive) that Pillow can read.

    Raises:
        PerturbationError: the folder does not exist or holds no usable image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise PerturbationError(f"RI: image folder {folder} does not exist; give a folder of "
                                "irrelevant images (or none, for generated scenes)")
    found: list[str] = []
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception:  # noqa: BLE001, S112 - an unreadable file is not an image to use
            continue
        found.append(str(path))
    if not found:
        raise PerturbationError(
            f"RI: image folder {folder} has no usable images (readable {', '.join(IMAGE_SUFFIXES)} "
            "files); add some, or drop the folder to use generated scenes")
    return tuple(found)


def check_ri(size: Any = None, folder: str | Path | None = None) -> None:
    """Check RI's options: the folder, when given, must hold usable images.

    Args:
        size: The image size; not checked here (RI's own call refuses a size below 1).
        folder: The folder of images, or None.

    Raises:
        PerturbationError: the folder is missing or holds no usable image.
    """
    if folder is not None:
        usable_images(str(folder))
