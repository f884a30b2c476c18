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
:func:`lowres_vocabulary` / :func:`words` (a word-level tokenizer's vocabulary).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import permutations

import numpy as np
from PIL import Image, ImageDraw

from modprobe.data import texts
from modprobe.data.palette import COLORS, RGB, WHITE, mix, wheel_neighbours
from modprobe.data.render import draw_shape
from modprobe.data.schema import GROUPS, Item

#: Side of a lowres image in pixels (a patch-8 vision tower sees 4 x 4 = 16 tokens).
SIZE = 32
#: Shapes are drawn at this multiple of the size and box-filtered down (anti-aliasing).
SUPERSAMPLE = 4
#: Shapes that stay recognisable at 32 x 32 (star, heart... do not).
LOWRES_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
#: Gray of the occluding block.
OCCLUDER_GRAY: tuple[int, int, int] = (128, 128, 128)
#: Item kinds: the three dataset groups plus "agree" (image and text name the same color).
KINDS: tuple[str, ...] = (*GROUPS, "agree")
TASK = "color"

_STREAM_PAIRS, _STREAM_GROUP, _STREAM_IMAGE, _STREAM_TEXT, _STREAM_TRAIN = 10, 11, 12, 13, 14


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

#: Text tiers lt (ours), by rising text ambiguity:
#: 0 direct, 1 one hop, 2 one-color object, 3 "T or U", 4 two-color object, 5 "T, U or V".
LOWRES_TEXT_TIERS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
_N_OPTIONS = {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3}


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


def _has_two_color_object(color: str, avoid: str | None) -> bool:
    """Whether some two-color object has ``color`` and not ``avoid``."""
    return any(color in pair and avoid not in pair for pair in texts.TWO_COLOR_OBJECTS.values())


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
    elif text_tier == 4 and not _has_two_color_object(color_text, color_vision):
        # The object must carry color_text and not the image color; fall back to any
        # color that has such an object.
        first = str(rng.choice([c for c in COLORS if c != color_vision
                                and _has_two_color_object(c, color_vision)]))
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


_WORD = re.compile(r"'s|[a-z0-9]+(?:-[a-z0-9]+)*|[?.,]")


def words(text: str) -> list[str]:
    """Word-level tokens of a lowres text: lowercase words, ``'s`` and the marks ``?,.``"""
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


# ----------------------------------------------------------------- dataset groups
#: Every ordered (image color, text color) pair; each appears once per 30 groups.
COLOR_PAIRS: tuple[tuple[str, str], ...] = tuple(permutations(COLORS, 2))


def image_name(group: int, level: int) -> str:
    """Relative path of a group's image at visual tier ``level``."""
    return f"images/g{group:04d}-v{level:02d}.png"


def group_items(seed: int, index: int, vis_tiers: list[int], text_tiers: list[int],
                kinds: list[str]) -> tuple[list[tuple[str, Image.Image]], list[Item]]:
    """Images and schema items of one lowres group (one shape, image color, text color).

    Each visual tier gets one image; each (visual tier, text tier, kind) one item. The
    text of a (group, text tier, kind) is the same at every visual tier.
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
