"""The low-resolution variant: 32x32 images for training a tiny model organism.

A feasibility probe found that a tiny LLaVA does not learn which color belongs to which
shape when an image holds distractors of other colors, but it does learn when difficulty
comes from *ambiguity*. So this variant draws exactly one shape per image and makes the
visual tiers ``lv`` harder by shrinking the shape, adding pixel noise, shifting its hue
toward a neighbouring color, fading it toward white and hiding part of it behind a gray
block. Its text tiers ``lt`` add hedged descriptions ("The A is T or U.") and objects
with two usual colors so that text-only answers spread their probability too.

The trainer's API: :func:`sample_lowres_item` (one item of any kind),
:func:`iter_training_examples` (unimodal and agreeing examples, never conflicts) and
:func:`lowres_vocabulary` / :func:`words` (a word-level tokenizer's vocabulary). The images
are drawn by :mod:`modprobe.data.lowres_image`, the descriptions written by
:mod:`modprobe.data.lowres_text`; their names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import permutations

import numpy as np
from PIL import Image

from modprobe.data import texts
from modprobe.data.lowres_image import (
    LOWRES_SHAPES,
    LOWRES_TIERS,
    OCCLUDER_GRAY,
    SIZE,
    SUPERSAMPLE,
    LowresImage,
    LowresTier,
    lowres_tier,
    render_lowres,
)
from modprobe.data.lowres_text import (
    LOWRES_TEXT_TIERS,
    LowresText,
    has_two_color_object,
    lowres_vocabulary,
    make_text,
    words,
)
from modprobe.data.palette import COLORS
from modprobe.data.schema import GROUPS, Item

__all__ = [
    "COLOR_PAIRS",
    "KINDS",
    "LOWRES_SHAPES",
    "LOWRES_TEXT_TIERS",
    "LOWRES_TIERS",
    "OCCLUDER_GRAY",
    "SIZE",
    "SUPERSAMPLE",
    "TASK",
    "LowresImage",
    "LowresItem",
    "LowresText",
    "LowresTier",
    "TrainingExample",
    "group_items",
    "image_name",
    "iter_training_examples",
    "lowres_tier",
    "lowres_vocabulary",
    "make_text",
    "render_lowres",
    "sample_lowres_item",
    "words",
]

#: Item kinds: the three dataset groups plus "agree" (image and text name the same color).
KINDS: tuple[str, ...] = (*GROUPS, "agree")
TASK = "color"

_STREAM_PAIRS, _STREAM_GROUP, _STREAM_IMAGE, _STREAM_TEXT, _STREAM_TRAIN = 10, 11, 12, 13, 14


@dataclass
class LowresItem:
    """One lowres item: image, description, question and both answers.

    Attributes:
        kind: ``"conflict"``, ``"text_irrelevant"``, ``"image_irrelevant"`` or ``"agree"``.
        vis_tier: Visual tier ``lv``.
        text_tier: Text tier ``lt``.
        shape: The shape the question asks about.
        question: The full question.
        context: The description.
        answer_vision: The drawn shape's base color.
        answer_text: The first color the description names.
        answer_text_options: Every color the description allows.
        rendered: The image and its parameters.
        text: The description and its parameters.
    """

    kind: str
    vis_tier: int
    text_tier: int
    shape: str
    question: str
    context: str
    answer_vision: str
    answer_text: str
    answer_text_options: list[str]
    rendered: LowresImage
    text: LowresText

    @property
    def image(self) -> Image.Image:
        """The 32 x 32 RGB image."""
        return self.rendered.image

    def metadata(self) -> dict[str, object]:
        """The item's generator parameters, as stored in ``items.jsonl``."""
        r = self.rendered
        return {
            "answer_text_options": list(self.answer_text_options),
            "drawn_shape": r.shape, "text_shape": self.text.described_shape,
            **({"hop_shape": self.text.hop_shape} if self.text.hop_shape else {}),
            **({"world_object": self.text.world_object} if self.text.world_object else {}),
            "n_distractors": 0, "occlusion_rate": 0.0,
            "target_fraction": round((r.box[2] / SIZE) ** 2, 6),
            "noise_sigma": round(r.noise_sigma, 4), "hue_jitter": round(r.hue_jitter, 4),
            "jitter_toward": r.jitter_toward, "fade": round(r.fade, 4),
            "occluded_share": round(r.occlusion, 4), "canvas": [SIZE, SIZE],
        }


@dataclass(frozen=True)
class _Roles:
    shape: str
    hop: str
    other: str
    absent: str


def _roles(rng: np.random.Generator, shape: str | None) -> _Roles:
    order = [LOWRES_SHAPES[int(i)] for i in rng.permutation(len(LOWRES_SHAPES))]
    if shape is not None:
        if shape not in LOWRES_SHAPES:
            raise ValueError(f"unknown lowres shape {shape!r}; use one of "
                             f"{', '.join(LOWRES_SHAPES)}")
        order.remove(shape)
        order.insert(0, shape)
    return _Roles(*order)


def _text_color(rng: np.random.Generator, kind: str, color_vision: str) -> str:
    if kind == "agree":
        return color_vision
    return str(rng.choice([c for c in COLORS if c != color_vision]))


def _compose(kind: str, vis_tier: int, text_tier: int, roles: _Roles, color_vision: str,
             color_text: str, rendered: LowresImage, rng: np.random.Generator) -> LowresItem:
    """Put an image and a freshly drawn text together as an item of ``kind``."""
    asked, described = {
        "conflict": (roles.shape, roles.shape), "agree": (roles.shape, roles.shape),
        "text_irrelevant": (roles.shape, roles.other),
        "image_irrelevant": (roles.absent, roles.absent),
    }[kind]
    agree = kind == "agree"
    first = color_text
    if text_tier == 4 and agree:
        # Name the image color as one of the object's two usual colors.
        first = color_vision
    elif text_tier == 4 and not has_two_color_object(color_text, color_vision):
        # The object must carry color_text and not the image color; fall back to any
        # color that has such an object.
        first = str(rng.choice([c for c in COLORS if c != color_vision
                                and has_two_color_object(c, color_vision)]))
    text = make_text(rng, text_tier, described, first,
                     avoid=None if agree else color_vision,
                     include=color_vision if agree else None,
                     hop_shape=roles.hop)
    return LowresItem(kind=kind, vis_tier=vis_tier, text_tier=text_tier, shape=asked,
                      question=texts.question(asked), context=text.context,
                      answer_vision=color_vision, answer_text=text.options[0],
                      answer_text_options=text.options, rendered=rendered, text=text)


def sample_lowres_item(rng: np.random.Generator, vis_tier: int, text_tier: int,
                       kind: str = "conflict", shape: str | None = None,
                       color_vision: str | None = None, color_text: str | None = None,
                       ) -> LowresItem:
    """Draw one lowres item.

    Args:
        rng: Random source (``np.random.default_rng(seed)``).
        vis_tier: Visual tier ``lv`` (0..7).
        text_tier: Text tier ``lt`` (0..5).
        kind: ``"conflict"`` (no text option is the image color), ``"agree"`` (the image
            color is among the text's options), ``"text_irrelevant"`` (the text describes
            another shape) or ``"image_irrelevant"`` (the question asks about a shape
            that is not drawn).
        shape: The drawn shape (random when ``None``).
        color_vision: The drawn color (random when ``None``).
        color_text: The first color the text names (random when ``None``; ignored for
            ``"agree"``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    roles = _roles(rng, shape)
    color_vision = color_vision or str(rng.choice(COLORS))
    if color_text is None or kind == "agree":
        color_text = _text_color(rng, kind, color_vision)
    elif color_text == color_vision:
        raise ValueError(f"a {kind} item needs a text color other than {color_vision!r}")
    rendered = render_lowres(rng, roles.shape, color_vision, vis_tier)
    return _compose(kind, vis_tier, text_tier, roles, color_vision, color_text, rendered, rng)


@dataclass
class TrainingExample:
    """One training example for the model organism.

    Attributes:
        condition: ``"vision"``, ``"text"`` or ``"multi"``.
        question: The full question.
        context: The description (``None`` for vision-only).
        image: The image (``None`` for text-only).
        answer: The target word. Text-only examples with several allowed colors draw it
            uniformly among them, so cross-entropy learns the spread.
        answer_options: Every color the input supports (a soft target, if wanted).
        text_options: Every color the description allows (empty without one); in a multi
            example it always holds the image color.
        vis_tier: Visual tier, or ``None`` without an image.
        text_tier: Text tier, or ``None`` without a description.
    """

    condition: str
    question: str
    context: str | None
    image: Image.Image | None
    answer: str
    answer_options: list[str] = field(default_factory=list)
    text_options: list[str] = field(default_factory=list)
    vis_tier: int | None = None
    text_tier: int | None = None


def iter_training_examples(seed: int, vis_tiers: Sequence[int] | None = None,
                           text_tiers: Sequence[int] | None = None,
                           conditions: Sequence[str] = ("vision", "text", "multi"),
                           weights: Sequence[float] | None = None, start: int = 0,
                           ) -> Iterator[TrainingExample]:
    """Endless stream of vision-only, text-only and agreeing multimodal examples.

    Never yields a conflict: in a multi example the image color is always among the
    text's options. Example ``k`` depends only on ``(seed, k)``, so ``start=k`` resumes a
    stream exactly.

    Args:
        seed: Seed of the stream.
        vis_tiers: Visual tiers to draw from uniformly (default all).
        text_tiers: Text tiers to draw from uniformly (default all).
        conditions: Conditions to draw from.
        weights: Probability of each condition (default uniform).
        start: Index of the first example.
    """
    vis = list(vis_tiers) if vis_tiers is not None else list(range(len(LOWRES_TIERS)))
    txt = list(text_tiers) if text_tiers is not None else list(LOWRES_TEXT_TIERS)
    conds = list(conditions)
    for c in conds:
        if c not in ("vision", "text", "multi"):
            raise ValueError(f"unknown condition {c!r}; use vision, text or multi")
    p = None if weights is None else np.asarray(weights, dtype=float) / float(np.sum(weights))
    index = start
    while True:
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_TRAIN, index]))
        condition = conds[int(rng.choice(len(conds), p=p))]
        lv, lt = int(rng.choice(vis)), int(rng.choice(txt))
        item = sample_lowres_item(rng, lv, lt, kind="agree")
        if condition == "vision":
            yield TrainingExample("vision", item.question, None, item.image,
                                  item.answer_vision, [item.answer_vision], [], lv, None)
        elif condition == "text":
            options = item.answer_text_options
            yield TrainingExample("text", item.question, item.context, None,
                                  options[int(rng.integers(len(options)))], list(options),
                                  list(options), None, lt)
        else:
            yield TrainingExample("multi", item.question, item.context, item.image,
                                  item.answer_vision, [item.answer_vision],
                                  list(item.answer_text_options), lv, lt)
        index += 1


# ----------------------------------------------------------------- dataset groups
#: Every ordered (image color, text color) pair; each appears once per 30 groups.
COLOR_PAIRS: tuple[tuple[str, str], ...] = tuple(permutations(COLORS, 2))


def image_name(group: int, level: int) -> str:
    """Relative path of a group's image at visual tier ``level``.

    Args:
        group: The group number.
        level: The visual tier ``lv``.

    Returns:
        ``images/gNNNN-vNN.png``.
    """
    return f"images/g{group:04d}-v{level:02d}.png"


def group_items(seed: int, index: int, vis_tiers: list[int], text_tiers: list[int],
                kinds: list[str]) -> tuple[list[tuple[str, Image.Image]], list[Item]]:
    """Images and schema items of one lowres group (one shape, image color, text color).

    Each visual tier gets one image; each (visual tier, text tier, kind) one item. The
    text of a (group, text tier, kind) is the same at every visual tier.

    Args:
        seed: The dataset's seed.
        index: The group number (its color pair and shapes depend on it alone).
        vis_tiers: Visual tiers ``lv`` to draw.
        text_tiers: Text tiers ``lt`` to write.
        kinds: Item kinds, among the dataset groups.

    Returns:
        ``(relative path, image)`` pairs and the schema items that use them.
    """
    for kind in kinds:
        if kind not in GROUPS:
            raise ValueError(f"unknown item kind {kind!r}; use one of {', '.join(GROUPS)}")
    block, slot = divmod(index, len(COLOR_PAIRS))
    order = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PAIRS, block])
                                  ).permutation(len(COLOR_PAIRS))
    color_vision, color_text = COLOR_PAIRS[int(order[slot])]
    roles = _roles(np.random.default_rng(np.random.SeedSequence([seed, _STREAM_GROUP, index])),
                   None)
    images: list[tuple[str, Image.Image]] = []
    items: list[Item] = []
    for lv in vis_tiers:
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_IMAGE, index, lv]))
        rendered = render_lowres(rng, roles.shape, color_vision, lv)
        path = image_name(index, lv)
        images.append((path, rendered.image))
        for lt in text_tiers:
            for kind in kinds:
                text_rng = np.random.default_rng(
                    np.random.SeedSequence([seed, _STREAM_TEXT, index, lt, KINDS.index(kind)]))
                item = _compose(kind, lv, lt, roles, color_vision, color_text, rendered,
                                text_rng)
                items.append(Item(
                    id=f"g{index:04d}-v{lv:02d}-t{lt}-{kind}", group=kind, task=TASK,
                    image=path, question=item.question, context=item.context,
                    answer_vision=item.answer_vision, answer_text=item.answer_text,
                    d_v=lv, d_t=lt, shape=item.shape,
                    extra={"variant": "lowres", "group_index": index,
                           "cluster": f"g{index:04d}", **item.metadata()}))
    return images, items
