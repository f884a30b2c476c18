"""Descriptions of the low-resolution variant, by text tier, and its word-level vocabulary.

The text tiers ``lt`` (:data:`LOWRES_TEXT_TIERS`) run from a direct statement to hedged
descriptions ("The A is T or U.") and objects with two usual colors, so that text-only
answers spread their probability too. :func:`make_text` writes one description;
:func:`words` and :func:`lowres_vocabulary` give a word-level tokenizer its vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from modprobe.data import texts
from modprobe.data.lowres_image import LOWRES_SHAPES
from modprobe.data.palette import COLORS

#: Text tiers lt (ours), by rising text ambiguity:
#: 0 direct, 1 one hop, 2 one-color object, 3 "T or U", 4 two-color object, 5 "T, U or V".
LOWRES_TEXT_TIERS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
_N_OPTIONS = {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3}


@dataclass
class LowresText:
    """A description and the colors it allows.

    Attributes:
        context: The description.
        options: The colors the description allows, in the order it names them.
        described_shape: The shape it talks about.
        hop_shape: The bridge shape of a one-hop text, else ``None``.
        world_object: The object of a world-knowledge text, else ``None``.
    """

    context: str
    options: list[str]
    described_shape: str
    hop_shape: str | None = None
    world_object: str | None = None


def make_text(rng: np.random.Generator, level: int, shape: str, first: str,
              avoid: str | None = None, include: str | None = None,
              hop_shape: str | None = None) -> LowresText:
    """A description of text tier ``level`` saying ``shape`` is ``first`` (maybe among others).

    Args:
        rng: Random source.
        level: Text tier ``lt``.
        shape: The shape described.
        first: The color named first (for the two-color-object tier, a color the
            object must have).
        avoid: A color that must not be among the options (the image's, in a conflict).
        include: A color that must be among the options (the image's, when agreeing).
        hop_shape: Bridge shape for the one-hop tier (default: a random other shape).
    """
    if level not in LOWRES_TEXT_TIERS:
        raise ValueError(f"the lowres variant has text tiers {LOWRES_TEXT_TIERS}, got {level}")
    if first == avoid:
        raise ValueError(f"the text color {first!r} equals the color to avoid")
    if level == 1:
        hop = hop_shape or str(rng.choice([s for s in LOWRES_SHAPES if s != shape]))
        return LowresText(texts.one_hop(shape, hop, first), [first], shape, hop_shape=hop)
    if level == 2:
        objects = texts.WORLD_OBJECTS[first]
        thing = objects[int(rng.integers(len(objects)))]
        return LowresText(texts.world(shape, thing), [first], shape, world_object=thing)
    if level == 4:
        fitting = [thing for thing, pair in texts.TWO_COLOR_OBJECTS.items()
                   if first in pair and avoid not in pair
                   and (include is None or include in pair)]
        thing = fitting[int(rng.integers(len(fitting)))]
        return LowresText(texts.world(shape, thing), list(texts.TWO_COLOR_OBJECTS[thing]),
                          shape, world_object=thing)
    options = [first]
    if include is not None and include != first:
        options.append(include)
    others = [c for c in COLORS if c not in options and c != avoid]
    extra = _N_OPTIONS[level] - len(options)
    options += [str(c) for c in rng.choice(others, extra, replace=False)] if extra > 0 else []
    options = [options[int(i)] for i in rng.permutation(len(options))]
    if level == 0:
        return LowresText(texts.direct(shape, options[0]), options, shape)
    return LowresText(texts.hedged(shape, options), options, shape)


def has_two_color_object(color: str, avoid: str | None) -> bool:
    """Whether some two-color object has ``color`` and not ``avoid``.

    Args:
        color: A color the object must have.
        avoid: A color it must not have (None: no such color).

    Returns:
        True when such an object exists in ``texts.TWO_COLOR_OBJECTS``.
    """
    return any(color in pair and avoid not in pair for pair in texts.TWO_COLOR_OBJECTS.values())


_WORD = re.compile(r"'s|[a-z0-9]+(?:-[a-z0-9]+)*|[?.,]")


def words(text: str) -> list[str]:
    """Split a lowres text into word-level tokens: lowercase words, ``'s`` and ``?,.``.

    Args:
        text: A question, description or answer.

    Returns:
        The tokens, in order.
    """
    return _WORD.findall(text.lower())


def lowres_vocabulary() -> list[str]:
    """Every word (as :func:`words` splits them) of any lowres question, context or answer.

    Sorted, so a tokenizer built from it is stable across runs.
    """
    sentences: list[str] = list(COLORS)
    for shape in LOWRES_SHAPES:
        sentences.append(texts.question(shape))
        sentences.append(texts.hedged(shape, list(COLORS)))
        for color in COLORS:
            sentences.append(texts.direct(shape, color))
        for hop in LOWRES_SHAPES:
            sentences.append(texts.one_hop(shape, hop, "red"))
        for objects in texts.WORLD_OBJECTS.values():
            sentences.extend(texts.world(shape, thing) for thing in objects)
        sentences.extend(texts.world(shape, thing) for thing in texts.TWO_COLOR_OBJECTS)
    return sorted({w for s in sentences for w in words(s)})
