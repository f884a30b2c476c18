"""Shape geometry, rasterised masks and deterministic PNG encoding.

Shapes are upright (never rotated) so that a square never looks like a diamond. A
shape of ``size`` s fits in an s x s box; its mask is rasterised once on that box and
then placed by integer offsets, so overlap tests are exact pixel intersections.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: Every shape the renderer can draw.
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "pentagon", "hexagon", "diamond", "heart", "cross",
)


def _regular_polygon(n: int, phase: float) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _star() -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = 1.0 if k % 2 == 0 else 0.42
        angle = -math.pi / 2 + math.pi * k / 5
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return points


def _heart() -> list[tuple[float, float]]:
    # The classic parametric heart, y flipped for image coordinates.
    points = []
    for k in range(60):
        t = 2 * math.pi * k / 60
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x / 17.0, -y / 17.0 - 0.1))
    return points


def _cross() -> list[tuple[float, float]]:
    a = 0.34  # half the bar width
    return [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a),
            (-1, a), (-1, -a), (-a, -a)]


def _unit_outline(shape: str) -> list[tuple[float, float]] | None:
    """Outline in [-1, 1]^2 (``None`` for the circle, drawn as an ellipse)."""
    if shape == "circle":
        return None
    if shape == "square":
        return [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    if shape == "triangle":
        return [(0.0, -1.0), (1.0, 0.8), (-1.0, 0.8)]
    if shape == "star":
        return _star()
    if shape == "pentagon":
        return _regular_polygon(5, -math.pi / 2)
    if shape == "hexagon":
        return _regular_polygon(6, 0.0)
    if shape == "diamond":
        return [(0.0, -1.0), (0.75, 0.0), (0.0, 1.0), (-0.75, 0.0)]
    if shape == "heart":
        return _heart()
    if shape == "cross":
        return _cross()
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, left: float, top: float, size: float,
               fill: tuple[int, int, int] | int) -> None:
    """Draw ``shape`` filling the box ``[left, left + size) x [top, top + size)``.

    Args:
        draw: The PIL drawing context.
        shape: A shape name of the renderer.
        left: Left edge of the box in pixels.
        top: Top edge of the box in pixels.
        size: Side of the box in pixels.
        fill: An RGB triple, or a gray level for a mask.
    """
    half = size / 2.0
    cx, cy = left + half - 0.5, top + half - 0.5
    outline = _unit_outline(shape)
    if outline is None:
        draw.ellipse([left, top, left + size - 1, top + size - 1], fill=fill)
        return
    draw.polygon([(cx + x * half, cy + y * half) for x, y in outline], fill=fill)


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``size x size`` mask of ``shape`` drawn in its box.

    Args:
        shape: A shape name of the renderer.
        size: Side of the box in pixels.

    Returns:
        True where the shape covers a pixel.
    """
    canvas = Image.new("L", (size, size), 0)
    draw_shape(ImageDraw.Draw(canvas), shape, 0, 0, size, 255)
    return np.asarray(canvas) > 0


@dataclass
class Placed:
    """A shape placed on a canvas: its box's top-left corner, size, color and mask.

    Attributes:
        shape: Shape name.
        color: Color name.
        left: Column of the box's left edge.
        top: Row of the box's top edge.
        size: Side of the box in pixels.
        mask: ``size x size`` boolean mask of the shape inside its box.
    """

    shape: str
    color: str
    left: int
    top: int
    size: int
    mask: np.ndarray

    def overlap_pixels(self, other: Placed) -> int:
        """Number of pixels covered by both shapes."""
        x0, y0 = max(self.left, other.left), max(self.top, other.top)
        x1 = min(self.left + self.size, other.left + other.size)
        y1 = min(self.top + self.size, other.top + other.size)
        if x0 >= x1 or y0 >= y1:
            return 0
        mine = self.mask[y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left]
        theirs = other.mask[y0 - other.top:y1 - other.top, x0 - other.left:x1 - other.left]
        return int(np.count_nonzero(mine & theirs))

    def boxes_within(self, other: Placed, gap: int) -> bool:
        """Whether the two boxes come closer than ``gap`` pixels.

        Args:
            other: The other placed shape.
            gap: The smallest allowed distance in pixels.

        Returns:
            True when they are closer (or overlap).
        """
        return not (self.left + self.size + gap <= other.left
                    or other.left + other.size + gap <= self.left
                    or self.top + self.size + gap <= other.top
                    or other.top + other.size + gap <= self.top)

    def canvas_mask(self, width: int, height: int) -> np.ndarray:
        """The shape's mask on a ``height x width`` canvas (clipped at the borders).

        Args:
            width: Canvas width in pixels.
            height: Canvas height in pixels.

        Returns:
            A boolean ``height x width`` array.
        """
        out = np.zeros((height, width), dtype=bool)
        x0, y0 = max(self.left, 0), max(self.top, 0)
        x1, y1 = min(self.left + self.size, width), min(self.top + self.size, height)
        if x0 < x1 and y0 < y1:
            out[y0:y1, x0:x1] = self.mask[y0 - self.top:y1 - self.top,
                                          x0 - self.left:x1 - self.left]
        return out


def png_bytes(image: Image.Image) -> bytes:
    """Encode an image as PNG with fixed settings and no metadata (same pixels, same bytes)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
