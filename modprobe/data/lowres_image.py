"""Images of the low-resolution variant: one shape on a 32x32 canvas, made ambiguous by tier.

Each visual tier ``lv`` (:data:`LOWRES_TIERS`) shrinks the shape, adds pixel noise, shifts
its hue toward a neighbouring color, fades it toward white and hides part of it behind a
gray block; :func:`render_lowres` draws one image. The items that use these images are
in :mod:`modprobe.data.lowres`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from modprobe.data.palette import RGB, WHITE, mix, wheel_neighbours
from modprobe.data.render import draw_shape

#: Side of a lowres image in pixels (a patch-8 vision tower sees 4 x 4 = 16 tokens).
SIZE = 32
#: Shapes are drawn at this multiple of the size and box-filtered down (anti-aliasing).
SUPERSAMPLE = 4
#: Shapes that stay recognisable at 32 x 32 (star, heart... do not).
LOWRES_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
#: Gray of the occluding block.
OCCLUDER_GRAY: tuple[int, int, int] = (128, 128, 128)


@dataclass(frozen=True)
class LowresTier:
    """One visual tier ``lv``: ranges the per-image parameters are drawn from.

    Attributes:
        level: The tier.
        target_side: Shape box side as a share of the image side.
        noise_sigma: Std of the Gaussian pixel noise, on the 0-255 scale.
        hue_jitter: How far the color moves toward a wheel neighbour (0: none; 0.5 would be
            exactly halfway, so the range stays below it).
        fade: How far the color moves toward white.
        occlusion: Share of the shape's box hidden behind a gray block.
    """

    level: int
    target_side: tuple[float, float]
    noise_sigma: tuple[float, float]
    hue_jitter: tuple[float, float]
    fade: tuple[float, float]
    occlusion: tuple[float, float]


#: Visual tiers lv 0..7 (ours): every ambiguity source grows with the tier.
LOWRES_TIERS: tuple[LowresTier, ...] = (
    LowresTier(0, (0.70, 0.85), (0, 0), (0.00, 0.00), (0.00, 0.00), (0.00, 0.00)),
    LowresTier(1, (0.60, 0.75), (4, 8), (0.00, 0.10), (0.00, 0.10), (0.00, 0.00)),
    LowresTier(2, (0.50, 0.65), (10, 16), (0.05, 0.15), (0.05, 0.20), (0.00, 0.00)),
    LowresTier(3, (0.45, 0.60), (16, 24), (0.10, 0.25), (0.15, 0.30), (0.00, 0.15)),
    LowresTier(4, (0.40, 0.55), (24, 34), (0.15, 0.30), (0.25, 0.40), (0.10, 0.25)),
    LowresTier(5, (0.35, 0.50), (34, 46), (0.20, 0.35), (0.35, 0.50), (0.15, 0.30)),
    LowresTier(6, (0.30, 0.42), (46, 60), (0.25, 0.42), (0.45, 0.60), (0.20, 0.35)),
    LowresTier(7, (0.25, 0.36), (60, 80), (0.30, 0.48), (0.55, 0.70), (0.25, 0.40)),
)


@dataclass
class LowresImage:
    """A rendered lowres image and the parameters that made it.

    Attributes:
        image: The 32 x 32 RGB image.
        target_mask: Pixels at least half covered by the shape before occlusion.
        shape: The drawn shape.
        color: Its base color (the vision answer).
        box: The shape's box ``(left, top, side)`` in pixels of the 32 x 32 image.
        noise_sigma: Pixel noise std (0-255 scale).
        hue_jitter: Share of the way toward ``jitter_toward``.
        jitter_toward: The neighbouring color the hue moved toward.
        fade: Share of the way toward white.
        occlusion: Share of the shape's box behind the gray block.
    """

    image: Image.Image
    target_mask: np.ndarray
    shape: str
    color: str
    box: tuple[float, float, float]
    noise_sigma: float
    hue_jitter: float
    jitter_toward: str
    fade: float
    occlusion: float


def lowres_tier(level: int) -> LowresTier:
    """The visual tier ``level`` (``ValueError`` outside 0..7)."""
    if not 0 <= level < len(LOWRES_TIERS):
        raise ValueError(f"the lowres variant has visual tiers 0..{len(LOWRES_TIERS) - 1}, "
                         f"got {level}")
    return LOWRES_TIERS[level]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else bounds[0]


def render_lowres(rng: np.random.Generator, shape: str, color: str, level: int,
                  tier: LowresTier | None = None) -> LowresImage:
    """Draw one ``shape`` of ``color`` at visual tier ``level``.

    Args:
        rng: Random source.
        shape: One of :data:`LOWRES_SHAPES` (any renderer shape works).
        color: One of the six colors.
        level: Visual tier ``lv``.
        tier: Custom parameter ranges replacing those of ``level`` (for experiments).
    """
    spec = tier if tier is not None else lowres_tier(level)
    big = SIZE * SUPERSAMPLE
    side_px = round(_uniform(rng, spec.target_side) * big)
    left = int(rng.integers(0, big - side_px + 1))
    top = int(rng.integers(0, big - side_px + 1))
    jitter, fade = _uniform(rng, spec.hue_jitter), _uniform(rng, spec.fade)
    toward = wheel_neighbours(color)[int(rng.integers(2))]
    rgb = mix(mix(RGB[color], RGB[toward], jitter), WHITE, fade)
    fill = tuple(round(c) for c in rgb)

    # Box-filtered coverage of the shape and of the occluder at 32 x 32, composited in
    # numpy: the same pixels as drawing at 128 x 128 and box-resizing, at a fraction of
    # the cost.
    shape_cover = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(shape_cover), shape, left, top, side_px, 255)
    cover = _box_down(np.asarray(shape_cover, dtype=np.float64) / 255.0)
    occlusion = _uniform(rng, spec.occlusion)
    occluder = np.zeros((big, big))
    if occlusion > 0:
        x0, y0, x1, y1 = _occluder_box(rng, left, top, side_px, occlusion)
        occluder[y0:y1 + 1, x0:x1 + 1] = 1.0
    hidden = _box_down(occluder)[..., None]
    small = (np.asarray(WHITE, dtype=np.float64) * (1 - cover[..., None])
             + np.asarray(fill, dtype=np.float64) * cover[..., None])
    small = small * (1 - hidden) + np.asarray(OCCLUDER_GRAY, dtype=np.float64) * hidden
    sigma = _uniform(rng, spec.noise_sigma)
    if sigma > 0:
        small = small + rng.normal(0.0, sigma, small.shape)
    pixels = np.clip(np.round(small), 0, 255).astype(np.uint8)
    mask = cover >= 0.5
    box = (left / SUPERSAMPLE, top / SUPERSAMPLE, side_px / SUPERSAMPLE)
    return LowresImage(Image.fromarray(pixels, "RGB"), mask, shape, color, box, sigma, jitter,
                       toward, fade, occlusion)


def _box_down(big: np.ndarray) -> np.ndarray:
    """Mean over SUPERSAMPLE x SUPERSAMPLE blocks (a box filter down to SIZE x SIZE)."""
    return big.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean(axis=(1, 3))


def _occluder_box(rng: np.random.Generator, left: int, top: int, side: int,
                  share: float) -> tuple[int, int, int, int]:
    """A block over ``share`` of the shape's box, entering from a random side."""
    depth = max(1, round(share * side))
    right, bottom = left + side - 1, top + side - 1
    edge = int(rng.integers(4))
    if edge == 0:
        return left, top, left + depth - 1, bottom
    if edge == 1:
        return right - depth + 1, top, right, bottom
    if edge == 2:
        return left, top, right, top + depth - 1
    return left, bottom - depth + 1, right, bottom
