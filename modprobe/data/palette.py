"""Colors and shapes shared by both variants of the color-recognition dataset."""

from __future__ import annotations

#: The six answer colors (docs/science.md section 1), in color-wheel order so that each
#: color's neighbours on the wheel are its neighbours in this tuple (cyclically).
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")

#: Saturated, mutually distinct RGB values. Drawing is not anti-aliased in the paper
#: variant, so every drawn pixel has exactly one of these values (tests rely on it).
RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (245, 215, 0),
    "green": (30, 160, 60),
    "blue": (30, 80, 220),
    "purple": (135, 45, 185),
}

WHITE: tuple[int, int, int] = (255, 255, 255)


def wheel_neighbours(color: str) -> tuple[str, str]:
    """The two colors next to ``color`` on the color wheel (previous, next)."""
    i = COLORS.index(color)
    return COLORS[(i - 1) % len(COLORS)], COLORS[(i + 1) % len(COLORS)]


def mix(a: tuple[float, float, float], b: tuple[float, float, float],
        t: float) -> tuple[float, float, float]:
    """Blend two RGB triples linearly: ``(1 - t) * a + t * b``.

    Args:
        a: The color at ``t = 0``.
        b: The color at ``t = 1``.
        t: The share of ``b``.

    Returns:
        The blended triple (floats).
    """
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)
