"""Small synthetic images for tests and examples."""

from __future__ import annotations

import numpy as np
from PIL import Image


def noise_image(seed: int, size: tuple[int, int]) -> Image.Image:
    """A random-pixel RGB image, the same for the same seed.

    Args:
        seed: Seed of the pixels.
        size: ``(width, height)``.

    Returns:
        The image.
    """
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
