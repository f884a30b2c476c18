"""The paper variant of the color-recognition conflict dataset (docs/science.md section 1).

A *group* is one target shape with one image color and one text color; it yields one
image per visual tier d_v and, per image, one item per text tier d_t and item kind
(conflict, text-irrelevant, image-irrelevant). Every random choice comes from a numpy
Generator seeded by (seed, group, tier), so a group's items do not depend on how many
groups or which tiers are generated alongside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations

import numpy as np
from PIL import Image

from modprobe.data import texts
from modprobe.data.layout import DistractorSpec, Scene, place_occluded, place_separated
from modprobe.data.palette import COLORS
from modprobe.data.render import SHAPES
from modprobe.data.schema import GROUPS, Item

TASK = "color"
#: Text tiers of the paper variant: direct, one hop, world knowledge.
TEXT_TIERS: tuple[int, ...] = (0, 1, 2)

# Stream ids mixed into every seed so that the streams never collide.
_STREAM_PAIRS, _STREAM_GROUP, _STREAM_IMAGE = 0, 1, 2


@dataclass(frozen=True)
class VisualTier:
    """One row of docs/science.md's d_v table.

    Attributes:
        d_v: The tier.
        width: Canvas width (px).
        height: Canvas height (px).
        target_px: Range of the target's box side in pixels (d_v 0-4), else ``None``.
        target_area: Range of the target box's area as a share of the canvas (d_v 5-13).
        n_distractors: Number of distractors.
        occlusion_rate: Share of distractors overlapping the target.
        distractor_px: Range of a distractor's box side in pixels (ours: the table leaves
            it open; small enough that the overlapping ones fit around the target).
    """

    d_v: int
    width: int
    height: int
    target_px: tuple[int, int] | None
    target_area: tuple[float, float] | None
    n_distractors: int
    occlusion_rate: float
    distractor_px: tuple[int, int]

    @property
    def n_overlapping(self) -> int:
        """Distractors that overlap the target (rate x count, rounded half up)."""
        return math.floor(self.occlusion_rate * self.n_distractors + 0.5)

    def target_side_range(self) -> tuple[int, int]:
        """Allowed target box side in pixels."""
        if self.target_px is not None:
            return self.target_px
        assert self.target_area is not None
        canvas = self.width * self.height
        return (math.ceil(math.sqrt(self.target_area[0] * canvas)),
                math.floor(math.sqrt(self.target_area[1] * canvas)))


def _big(d_v: int) -> VisualTier:
    return VisualTier(d_v, 800, 600, (80, 200), None, d_v, 0.0, (80, 200))


def _small(d_v: int, area: tuple[float, float], n: int, rate: float,
           distractor_px: tuple[int, int]) -> VisualTier:
    return VisualTier(d_v, 224, 224, None, area, n, rate, distractor_px)


#: docs/science.md section 1's visual tiers, d_v 0..13.
VISUAL_TIERS: tuple[VisualTier, ...] = (
    *(_big(d) for d in range(5)),
    _small(5, (0.20, 0.40), 7, 0.5, (22, 40)),
    _small(6, (0.20, 0.40), 10, 0.8, (22, 40)),
    _small(7, (0.05, 0.10), 7, 0.5, (18, 31)),
    _small(8, (0.05, 0.10), 11, 0.8, (18, 31)),
    _small(9, (0.04, 0.06), 20, 0.3, (13, 25)),
    _small(10, (0.04, 0.06), 30, 0.6, (13, 25)),
    _small(11, (0.04, 0.06), 40, 0.5, (13, 25)),
    _small(12, (0.04, 0.06), 55, 0.6, (13, 25)),
    _small(13, (0.04, 0.06), 70, 0.7, (13, 25)),
)


@dataclass(frozen=True)
class GroupPlan:
    """The choices shared by all items of one group.

    Attributes:
        index: Group number.
        shape: The target shape (asked about in conflicts and text-irrelevant items).
        color_vision: The target's color in every image of the group.
        color_text: The color every description of the group states.
        hop_shape: The bridge shape B of the one-hop text (never drawn).
        other_shape: The shape a text-irrelevant description talks about (never drawn).
        absent_shape: The shape an image-irrelevant item asks about (never drawn).
        world_object: The real object of ``color_text`` used at d_t = 2 (with article).
        distractor_shapes: Shapes distractors may take.
        distractor_colors: Colors distractors may take (neither answer).
    """

    index: int
    shape: str
    color_vision: str
    color_text: str
    hop_shape: str
    other_shape: str
    absent_shape: str
    world_object: str
    distractor_shapes: tuple[str, ...]
    distractor_colors: tuple[str, ...]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


#: Every ordered (image color, text color) pair; each appears once per 30 groups.
COLOR_PAIRS: tuple[tuple[str, str], ...] = tuple(permutations(COLORS, 2))


def plan_group(seed: int, index: int) -> GroupPlan:
    """Draw the choices every item of group ``index`` shares.

    Args:
        seed: The dataset's seed.
        index: The group number; its plan does not depend on how many groups exist.

    Returns:
        Its shapes, colors and world object (:class:`GroupPlan`).
    """
    block, slot = divmod(index, len(COLOR_PAIRS))
    pair_order = _rng(seed, _STREAM_PAIRS, block).permutation(len(COLOR_PAIRS))
    color_vision, color_text = COLOR_PAIRS[int(pair_order[slot])]
    rng = _rng(seed, _STREAM_GROUP, index)
    shape, hop, other, absent = (SHAPES[int(i)] for i in rng.choice(len(SHAPES), 4,
                                                                    replace=False))
    objects = texts.WORLD_OBJECTS[color_text]
    return GroupPlan(
        index=index, shape=shape, color_vision=color_vision, color_text=color_text,
        hop_shape=hop, other_shape=other, absent_shape=absent,
        world_object=objects[int(rng.integers(len(objects)))],
        distractor_shapes=tuple(s for s in SHAPES if s not in (shape, hop, other, absent)),
        distractor_colors=tuple(c for c in COLORS if c not in (color_vision, color_text)),
    )


def tier(d_v: int) -> VisualTier:
    """The visual tier ``d_v`` (``ValueError`` outside 0..13)."""
    if not 0 <= d_v < len(VISUAL_TIERS):
        raise ValueError(f"the paper variant has visual tiers 0..{len(VISUAL_TIERS) - 1}, "
                         f"got {d_v}")
    return VISUAL_TIERS[d_v]


def make_scene(seed: int, plan: GroupPlan, d_v: int) -> Scene:
    """Lay out the image of ``plan`` at visual tier ``d_v``.

    Args:
        seed: The dataset's seed.
        plan: The group's shared choices (:func:`plan_group`).
        d_v: The visual tier (0..13): target size, distractors, occlusion.

    Returns:
        The placed shapes, ready to render.
    """
    spec = tier(d_v)
    rng = _rng(seed, _STREAM_IMAGE, plan.index, d_v)
    lo, hi = spec.target_side_range()
    target_size = int(rng.integers(lo, hi + 1))
    distractors = [
        DistractorSpec(
            shape=plan.distractor_shapes[int(rng.integers(len(plan.distractor_shapes)))],
            color=plan.distractor_colors[int(rng.integers(len(plan.distractor_colors)))],
            size=int(rng.integers(spec.distractor_px[0], spec.distractor_px[1] + 1)),
        )
        for _ in range(spec.n_distractors)
    ]
    if spec.occlusion_rate == 0.0:
        return place_separated(rng, spec.width, spec.height, plan.shape, plan.color_vision,
                               target_size, distractors)
    return place_occluded(rng, spec.width, spec.height, plan.shape, plan.color_vision,
                          target_size, distractors, spec.n_overlapping)


def describe(described_shape: str, plan: GroupPlan, d_t: int) -> str:
    """The description of text tier ``d_t`` stating that ``described_shape`` has the text color.

    Args:
        described_shape: The shape the description is about.
        plan: The group's shared choices (text color, bridge shape, world object).
        d_t: The text tier: 0 direct, 1 one hop, 2 world knowledge.

    Returns:
        The description.
    """
    if d_t == 0:
        return texts.direct(described_shape, plan.color_text)
    if d_t == 1:
        return texts.one_hop(described_shape, plan.hop_shape, plan.color_text)
    if d_t == 2:
        return texts.world(described_shape, plan.world_object)
    raise ValueError(f"the paper variant has text tiers 0, 1, 2; got {d_t}")


def image_name(group: int, d_v: int) -> str:
    """Relative path of a group's image at tier ``d_v``.

    Args:
        group: The group number.
        d_v: The visual tier.

    Returns:
        ``images/gNNNN-vNN.png``.
    """
    return f"images/g{group:04d}-v{d_v:02d}.png"


def group_items(seed: int, index: int, vis_tiers: list[int], text_tiers: list[int],
                kinds: list[str]) -> tuple[list[tuple[str, Image.Image]], list[Item]]:
    """Images and items of one group: one image per visual tier, one item per combination.

    Args:
        seed: The dataset's seed.
        index: The group number.
        vis_tiers: Visual tiers to draw (one image each).
        text_tiers: Text tiers to write (one item per visual tier, text tier and kind).
        kinds: Item kinds (``conflict``, ``text_irrelevant``, ``image_irrelevant``).

    Returns:
        ``(relative path, image)`` pairs and the items that use them.
    """
    plan = plan_group(seed, index)
    images: list[tuple[str, Image.Image]] = []
    items: list[Item] = []
    for d_v in vis_tiers:
        scene = make_scene(seed, plan, d_v)
        path = image_name(index, d_v)
        images.append((path, scene.render()))
        scene_meta = {
            "n_distractors": len(scene.distractors),
            "occlusion_rate": round(scene.occlusion_rate(), 6),
            "target_fraction": round(scene.target_fraction(), 6),
            "target_visible": round(scene.target_visible(), 6),
            "canvas": [scene.width, scene.height],
            "distractor_colors": sorted({d.color for d in scene.distractors}),
            "distractor_shapes": sorted({d.shape for d in scene.distractors}),
        }
        for d_t in text_tiers:
            for kind in kinds:
                asked, described = {
                    "conflict": (plan.shape, plan.shape),
                    "text_irrelevant": (plan.shape, plan.other_shape),
                    "image_irrelevant": (plan.absent_shape, plan.absent_shape),
                }[kind]
                extra = {
                    "variant": "paper", "group_index": index, "cluster": f"g{index:04d}",
                    "drawn_shape": plan.shape, "text_shape": described,
                    **({"hop_shape": plan.hop_shape} if d_t == 1 else {}),
                    **({"world_object": plan.world_object} if d_t == 2 else {}),
                    **scene_meta,
                }
                items.append(Item(
                    id=f"g{index:04d}-v{d_v:02d}-t{d_t}-{kind}", group=kind, task=TASK,
                    image=path, question=texts.question(asked),
                    context=describe(described, plan, d_t),
                    answer_vision=plan.color_vision, answer_text=plan.color_text,
                    d_v=d_v, d_t=d_t, shape=asked, extra=extra))
    return images, items


def check_kinds(kinds: list[str]) -> None:
    """Raise ``ValueError`` for an unknown item kind."""
    for kind in kinds:
        if kind not in GROUPS:
            raise ValueError(f"unknown item kind {kind!r}; use one of {', '.join(GROUPS)}")
