"""Placing a target and its distractors on a canvas (the paper variant's scenes).

Two regimes, following docs/science.md's tier table:

* no occlusion (d_v 0-4): every shape keeps a clear gap from every other shape;
* occlusion (d_v 5-13): a given number of distractors overlap the target (drawn on top
  of it, slid in from outside until they touch it and then pushed a little further),
  the others never touch it. Distractors may overlap each other.

The target always stays at least :data:`MIN_VISIBLE` visible (ours: the question must
stay answerable), so overlapping distractors are only pushed deeper while that holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from modprobe.data.palette import RGB, WHITE
from modprobe.data.render import Placed, draw_shape, shape_mask

#: Least share of the target's pixels left visible by overlapping distractors.
MIN_VISIBLE = 0.5
#: Gap between shapes in the no-occlusion regime, and around the target otherwise (px).
CLEAR_GAP = 16
TOUCH_GAP = 2
_TRIES = 300


class LayoutError(RuntimeError):
    """No placement satisfies the constraints (should not happen with the tier table)."""


@dataclass
class Scene:
    """A target and its distractors on a white canvas, in drawing order.

    Attributes:
        width: Canvas width in pixels.
        height: Canvas height in pixels.
        target: The target shape (drawn first).
        distractors: Distractor shapes, drawn after the target in this order.
    """

    width: int
    height: int
    target: Placed
    distractors: list[Placed]

    def render(self) -> Image.Image:
        """The scene as an RGB image (no anti-aliasing: every pixel is a palette color)."""
        image = Image.new("RGB", (self.width, self.height), WHITE)
        draw = ImageDraw.Draw(image)
        for placed in [self.target, *self.distractors]:
            draw_shape(draw, placed.shape, placed.left, placed.top, placed.size,
                       RGB[placed.color])
        return image

    def overlapping(self) -> list[Placed]:
        """Distractors sharing at least one pixel with the target."""
        return [d for d in self.distractors if d.overlap_pixels(self.target) > 0]

    def occlusion_rate(self) -> float:
        """Share of distractors that overlap the target (0 without distractors)."""
        return len(self.overlapping()) / len(self.distractors) if self.distractors else 0.0

    def target_fraction(self) -> float:
        """Area of the target's box as a share of the canvas area."""
        return self.target.size ** 2 / (self.width * self.height)

    def target_visible(self) -> float:
        """Share of the target's pixels not covered by any distractor."""
        covered = np.zeros_like(self.target.mask)
        for d in self.overlapping():
            covered |= _covered_in_target(self.target, d)
        total = np.count_nonzero(self.target.mask)
        return float(np.count_nonzero(self.target.mask & ~covered) / total)


def _covered_in_target(target: Placed, other: Placed) -> np.ndarray:
    """Mask, on the target's box, of the pixels ``other`` covers."""
    out = np.zeros_like(target.mask)
    x0, y0 = max(target.left, other.left), max(target.top, other.top)
    x1 = min(target.left + target.size, other.left + other.size)
    y1 = min(target.top + target.size, other.top + other.size)
    if x0 < x1 and y0 < y1:
        out[y0 - target.top:y1 - target.top, x0 - target.left:x1 - target.left] = \
            other.mask[y0 - other.top:y1 - other.top, x0 - other.left:x1 - other.left]
    return out & target.mask


def _dilated(placed: Placed, by: int) -> Placed:
    """``placed`` grown by ``by`` pixels in every direction (square structuring element)."""
    size = placed.size + 2 * by
    grown = np.zeros((size, size), dtype=bool)
    for dy in range(2 * by + 1):
        for dx in range(2 * by + 1):
            grown[dy:dy + placed.size, dx:dx + placed.size] |= placed.mask
    return Placed(placed.shape, placed.color, placed.left - by, placed.top - by, size, grown)


def _inside(p: Placed, width: int, height: int) -> bool:
    return p.left >= 0 and p.top >= 0 and p.left + p.size <= width and p.top + p.size <= height


@dataclass(frozen=True)
class DistractorSpec:
    """What a distractor looks like before it is placed."""

    shape: str
    color: str
    size: int


def place_separated(rng: np.random.Generator, width: int, height: int, target_shape: str,
                    target_color: str, target_size: int, distractors: list[DistractorSpec],
                    ) -> Scene:
    """Place every shape at a random position, no two closer than :data:`CLEAR_GAP` (d_v 0-4).

    Args:
        rng: Random source.
        width: Canvas width in pixels.
        height: Canvas height in pixels.
        target_shape: The target's shape.
        target_color: The target's color.
        target_size: The target's box side in pixels.
        distractors: The distractors to place.

    Returns:
        The scene (target first, then the distractors).
    """
    for _ in range(_TRIES):
        placed: list[Placed] = []
        specs = [DistractorSpec(target_shape, target_color, target_size), *distractors]
        for spec in specs:
            for _ in range(_TRIES):
                left = int(rng.integers(0, width - spec.size + 1))
                top = int(rng.integers(0, height - spec.size + 1))
                candidate = Placed(spec.shape, spec.color, left, top, spec.size,
                                   np.zeros((0, 0), dtype=bool))
                if not any(candidate.boxes_within(p, CLEAR_GAP) for p in placed):
                    candidate.mask = shape_mask(spec.shape, spec.size)
                    placed.append(candidate)
                    break
            else:
                break  # restart the whole scene
        if len(placed) == len(specs):
            return Scene(width, height, placed[0], placed[1:])
    raise LayoutError("could not separate the shapes; the canvas is too small for them")


def place_occluded(rng: np.random.Generator, width: int, height: int, target_shape: str,
                   target_color: str, target_size: int, distractors: list[DistractorSpec],
                   n_overlapping: int) -> Scene:
    """Target plus distractors of which exactly ``n_overlapping`` overlap it (d_v 5-13).

    The first ``n_overlapping`` specs become overlapping distractors, the rest stay
    clear of the target; the drawing order is then shuffled.

    Args:
        rng: Random source.
        width: Canvas width in pixels.
        height: Canvas height in pixels.
        target_shape: The target's shape.
        target_color: The target's color.
        target_size: The target's box side in pixels.
        distractors: The distractors to place.
        n_overlapping: How many of them overlap the target.

    Returns:
        The scene.
    """
    largest = max((d.size for d in distractors), default=0)
    margin = min(largest // 2, (width - target_size) // 2, (height - target_size) // 2)
    target = Placed(
        target_shape, target_color,
        int(rng.integers(margin, width - target_size - margin + 1)),
        int(rng.integers(margin, height - target_size - margin + 1)),
        target_size, shape_mask(target_shape, target_size))
    keep_out = _dilated(target, TOUCH_GAP)
    covered = np.zeros_like(target.mask)
    target_pixels = np.count_nonzero(target.mask)
    placed: list[Placed] = []
    for k, spec in enumerate(distractors):
        if k < n_overlapping:
            d = _place_touching(rng, width, height, target, spec, covered, target_pixels)
            covered |= _covered_in_target(target, d)
        else:
            d = _place_clear(rng, width, height, keep_out, spec)
        placed.append(d)
    order = rng.permutation(len(placed))
    return Scene(width, height, target, [placed[i] for i in order])


def _place_touching(rng: np.random.Generator, width: int, height: int, target: Placed,
                    spec: DistractorSpec, covered: np.ndarray, target_pixels: int) -> Placed:
    size = spec.size
    while size >= 3:
        mask = shape_mask(spec.shape, size)
        for _ in range(60):
            found = _slide_in(rng, width, height, target, spec, size, mask, covered,
                              target_pixels)
            if found is not None:
                return found
        size = int(size * 0.85)
    raise LayoutError("could not place a distractor overlapping the target")


def _slide_in(rng: np.random.Generator, width: int, height: int, target: Placed,
              spec: DistractorSpec, size: int, mask: np.ndarray, covered: np.ndarray,
              target_pixels: int) -> Placed | None:
    """Slide a distractor toward the target's centre until it touches, then push it deeper.

    It comes from a random direction and goes a random depth further while the target
    stays visible enough; None when no such position exists.
    """
    angle = rng.uniform(0.0, 2.0 * math.pi)
    dx, dy = math.cos(angle), math.sin(angle)
    cx, cy = target.left + target.size / 2.0, target.top + target.size / 2.0
    depth = int(rng.integers(0, max(1, int(0.4 * size)) + 1))

    def at(distance: float) -> Placed:
        return Placed(spec.shape, spec.color, round(cx + dx * distance - size / 2.0),
                      round(cy + dy * distance - size / 2.0), size, mask)

    distance = (target.size + size) / math.sqrt(2.0) + 1.0
    while distance > 0 and at(distance).overlap_pixels(target) == 0:
        distance -= 1.0
    if distance <= 0:
        return None
    # Deepest first, backing off toward mere contact while too much of the target is hidden.
    for push in range(depth, -1, -1):
        candidate = at(distance - push)
        if not _inside(candidate, width, height) or candidate.overlap_pixels(target) == 0:
            continue
        visible = np.count_nonzero(target.mask & ~(covered | _covered_in_target(target,
                                                                               candidate)))
        if visible >= MIN_VISIBLE * target_pixels:
            return candidate
    return None  # even mere contact hides too much from here: try another direction


def _place_clear(rng: np.random.Generator, width: int, height: int, keep_out: Placed,
                 spec: DistractorSpec) -> Placed:
    size = spec.size
    while size >= 3:
        mask = shape_mask(spec.shape, size)
        for _ in range(_TRIES):
            candidate = Placed(spec.shape, spec.color, int(rng.integers(0, width - size + 1)),
                               int(rng.integers(0, height - size + 1)), size, mask)
            if candidate.overlap_pixels(keep_out) == 0:
                return candidate
        size = int(size * 0.85)
    raise LayoutError("could not place a distractor clear of the target")
