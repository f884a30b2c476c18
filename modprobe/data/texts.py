"""Question and description templates, and the world-knowledge objects of each color.

The templates are docs/science.md section 1's; the object lists are ours (curated by hand).
"""

from __future__ import annotations

#: Appended to every question (docs/science.md section 1).
ONE_WORD = "Please use one word to answer this question."

#: Real objects of one unambiguous, everyday color (d_t = 2), with their article.
#: Ours: kept to objects whose color few people would dispute (a US mailbox is blue).
WORLD_OBJECTS: dict[str, tuple[str, ...]] = {
    "red": ("a ripe tomato", "a stop sign", "a fire truck", "a ripe strawberry", "a cherry"),
    "orange": ("a carrot", "a pumpkin", "a traffic cone", "a basketball", "a tangerine"),
    "yellow": ("a ripe banana", "a lemon", "a US school bus", "a canary", "a rubber duck"),
    "green": ("a lime", "an emerald", "a blade of grass", "a four-leaf clover", "a pea pod"),
    "blue": ("a US mailbox", "a blueberry", "a sapphire", "a clear daytime sky", "a smurf"),
    "purple": ("an eggplant", "an amethyst", "a lavender flower", "a violet flower"),
}

#: Real objects with two usual colors (lowres variant's ambiguous world knowledge).
TWO_COLOR_OBJECTS: dict[str, tuple[str, str]] = {
    "an apple": ("red", "green"),
    "a grape": ("green", "purple"),
    "a pear": ("green", "yellow"),
    "a candle flame": ("orange", "yellow"),
    "a plum": ("purple", "red"),
    "a peacock feather": ("blue", "green"),
    "a hydrangea": ("blue", "purple"),
}


def article(noun: str) -> str:
    """``noun`` with its indefinite article ("a square", "an apple")."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def question(shape: str) -> str:
    """The full question about ``shape``'s color, one-word instruction included."""
    return f"What color is the {shape}? {ONE_WORD}"


def direct(shape: str, color: str) -> str:
    """Text tier 0: "The A is T.".

    Args:
        shape: The shape A.
        color: The color T.

    Returns:
        The sentence.
    """
    return f"The {shape} is {color}."


def one_hop(shape: str, via_shape: str, color: str) -> str:
    """Text tier 1: "The A's color is the same as a B. The B is T.".

    Args:
        shape: The shape A.
        via_shape: The bridge shape B.
        color: The color T.

    Returns:
        The two sentences.
    """
    return f"The {shape}'s color is the same as {article(via_shape)}. The {via_shape} is {color}."


def world(shape: str, thing: str) -> str:
    """Text tier 2: "The A's color is the same as a D.".

    Args:
        shape: The shape A.
        thing: The object D, with its article (``"a banana"``).

    Returns:
        The sentence.
    """
    return f"The {shape}'s color is the same as {thing}."


def hedged(shape: str, colors: list[str]) -> str:
    """A hedged description (lowres variant): "The A is T or U." / "The A is T, U or V.".

    Args:
        shape: The shape A.
        colors: The colors allowed, in the order named.

    Returns:
        The sentence.
    """
    listed = ", ".join(colors[:-1]) + f" or {colors[-1]}" if len(colors) > 1 else colors[0]
    return f"The {shape} is {listed}."
