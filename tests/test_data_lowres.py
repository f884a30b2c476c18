"""The lowres variant: ambiguity grows with the tiers, kinds, training stream, vocabulary."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from modprobe.data import generate, load_dataset, lowres, texts
from modprobe.data.lowres import (
    KINDS,
    LOWRES_SHAPES,
    LOWRES_TEXT_TIERS,
    LOWRES_TIERS,
    LowresTier,
    iter_training_examples,
    lowres_vocabulary,
    render_lowres,
    sample_lowres_item,
    words,
)
from modprobe.data.palette import COLORS, RGB

N_SAMPLES = 24  # images per tier for the per-tier averages


def _renders(level: int) -> list[lowres.LowresImage]:
    rng = np.random.default_rng(level)
    return [render_lowres(rng, LOWRES_SHAPES[k % 4], COLORS[k % 6], level)
            for k in range(N_SAMPLES)]


@pytest.fixture(scope="module")
def renders() -> dict[int, list[lowres.LowresImage]]:
    return {level: _renders(level) for level in range(len(LOWRES_TIERS))}


def _background(r: lowres.LowresImage) -> np.ndarray:
    """Pixels at least 2 px outside the shape's box (no shape, no occluder)."""
    left, top, side = r.box
    ys, xs = np.mgrid[0:lowres.SIZE, 0:lowres.SIZE]
    outside = ((xs < left - 2) | (xs > left + side + 1) | (ys < top - 2)
               | (ys > top + side + 1))
    return np.asarray(r.image, dtype=float)[outside]


def test_images_are_32px_rgb(renders):
    for r in itertools.chain.from_iterable(renders.values()):
        assert r.image.size == (32, 32) and r.image.mode == "RGB"


def test_target_shrinks_with_the_tier(renders):
    areas = [np.mean([r.target_mask.sum() for r in renders[lv]]) for lv in sorted(renders)]
    assert all(a > b for a, b in itertools.pairwise(areas)), areas


def test_noise_rises_with_the_tier(renders):
    # Measured on the image: spread of the background pixels (white before noise).
    spread = [np.mean([_background(r).std() for r in renders[lv] if _background(r).size])
              for lv in sorted(renders)]
    assert spread[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(spread)), spread


def test_color_drifts_from_the_palette_with_the_tier(renders):
    # Mean color inside the shape (noise averages out) moves away from the base color as
    # hue jitter and fading grow.
    def drift(r: lowres.LowresImage) -> float:
        m = r.target_mask  # eroded by one pixel: edge pixels blend with the background
        core = m.copy()
        core[1:, :] &= m[:-1, :]
        core[:-1, :] &= m[1:, :]
        core[:, 1:] &= m[:, :-1]
        core[:, :-1] &= m[:, 1:]
        inside = np.asarray(r.image, dtype=float)[core]
        return float(np.linalg.norm(inside.mean(axis=0) - np.asarray(RGB[r.color])))

    mean = {lv: np.mean([drift(r) for r in renders[lv]]) for lv in renders}
    assert mean[0] < 5.0
    assert mean[0] < mean[2] < mean[4] < mean[7]


def test_occlusion_hides_part_of_the_box():
    occluded = LowresTier(0, (0.5, 0.5), (0, 0), (0, 0), (0, 0), (0.25, 0.25))
    clear = LowresTier(0, (0.5, 0.5), (0, 0), (0, 0), (0, 0), (0, 0))
    for seed in range(5):
        # Same seed, same shape and position; only the gray block differs.
        a = render_lowres(np.random.default_rng(seed), "square", "blue", 0, tier=occluded)
        b = render_lowres(np.random.default_rng(seed), "square", "blue", 0, tier=clear)
        assert a.box == b.box and a.box[2] == 16
        img, base = np.asarray(a.image, dtype=float), np.asarray(b.image, dtype=float)
        gray = np.asarray(lowres.OCCLUDER_GRAY, dtype=float)
        # Per pixel, the share the block covers (box filtering conserves area); the
        # channel farthest from gray gives the best-conditioned estimate.
        channel = np.argmax(np.abs(base - gray), axis=-1)[..., None]
        num = np.take_along_axis(base - img, channel, -1)
        den = np.take_along_axis(base - gray, channel, -1)
        share = (num / den).sum()
        assert share == pytest.approx(0.25 * 16 * 16, abs=2.0)
    assert [t.occlusion[1] for t in LOWRES_TIERS[:3]] == [0.0, 0.0, 0.0]
    assert all(t.occlusion[1] > 0 for t in LOWRES_TIERS[3:])


def test_parameters_grow_monotonically():
    for field in ("noise_sigma", "hue_jitter", "fade", "occlusion"):
        highs = [getattr(t, field)[1] for t in LOWRES_TIERS]
        assert highs == sorted(highs), field
    assert all(t.hue_jitter[1] < 0.5 for t in LOWRES_TIERS), "the base color must stay nearest"


@pytest.mark.parametrize(("kind", "text_tier"), itertools.product(KINDS, LOWRES_TEXT_TIERS))
def test_kinds_and_text_tiers(kind, text_tier):
    rng = np.random.default_rng(hash((kind, text_tier)) % 2**32)
    for _ in range(12):
        item = sample_lowres_item(rng, 3, text_tier, kind=kind)
        options = item.answer_text_options
        assert item.answer_text == options[0]
        assert len(options) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3}[text_tier]
        assert len(set(options)) == len(options)
        if kind == "agree":
            assert item.answer_vision in options
        else:
            assert item.answer_vision not in options
        drawn = item.rendered.shape
        if kind == "image_irrelevant":
            assert item.shape != drawn
        else:
            assert item.shape == drawn
        if kind == "text_irrelevant":
            assert item.text.described_shape != drawn
        else:
            assert item.text.described_shape == item.shape
        assert item.question == f"What color is the {item.shape}? {texts.ONE_WORD}"
        if text_tier in (3, 5):
            assert " or " in item.context
        if text_tier == 4:
            assert set(texts.TWO_COLOR_OBJECTS[item.text.world_object]) == set(options)


def test_sample_respects_given_colors_and_shape():
    item = sample_lowres_item(np.random.default_rng(0), 0, 0, shape="cross",
                              color_vision="green", color_text="red")
    assert (item.shape, item.answer_vision, item.answer_text) == ("cross", "green", "red")
    with pytest.raises(ValueError, match="text color"):
        sample_lowres_item(np.random.default_rng(0), 0, 0, color_vision="red",
                           color_text="red")
    with pytest.raises(ValueError, match="visual tiers"):
        sample_lowres_item(np.random.default_rng(0), 8, 0)


def test_training_stream_never_conflicts_and_resumes():
    examples = list(itertools.islice(iter_training_examples(3), 300))
    seen = {e.condition for e in examples}
    assert seen == {"vision", "text", "multi"}
    for e in examples:
        if e.condition == "vision":
            assert e.context is None and e.image is not None and e.text_options == []
        elif e.condition == "text":
            assert e.image is None and e.answer in e.text_options == e.answer_options
        else:
            assert e.answer in e.text_options, "a multi example conflicts"
            assert e.image is not None and e.context
    resumed = next(iter_training_examples(3, start=123))
    again = examples[123]
    assert (resumed.condition, resumed.context, resumed.answer) == \
        (again.condition, again.context, again.answer)
    if resumed.image is not None:
        assert resumed.image.tobytes() == again.image.tobytes()


def test_training_stream_options():
    only_text = list(itertools.islice(
        iter_training_examples(0, text_tiers=[3], conditions=["text"]), 200))
    assert {e.condition for e in only_text} == {"text"}
    assert all(len(e.answer_options) == 2 for e in only_text)
    # Hedged texts spread the answers: both options are used as targets.
    firsts = sum(e.answer == e.answer_options[0] for e in only_text)
    assert 60 < firsts < 140
    mostly_vision = list(itertools.islice(
        iter_training_examples(0, weights=[8, 1, 1]), 200))
    assert sum(e.condition == "vision" for e in mostly_vision) > 120


def test_vocabulary_covers_every_word():
    vocab = set(lowres_vocabulary())
    assert set(COLORS) | set(LOWRES_SHAPES) | {"?", ".", ",", "'s", "or"} <= vocab
    rng = np.random.default_rng(0)
    for kind, lt in itertools.product(KINDS, LOWRES_TEXT_TIERS):
        for _ in range(10):
            item = sample_lowres_item(rng, 0, lt, kind=kind)
            for text in (item.question, item.context, item.answer_vision, *item.answer_text_options):
                assert set(words(text)) <= vocab, text
    for e in itertools.islice(iter_training_examples(1), 200):
        assert set(words(f"{e.question} {e.context or ''} {e.answer}")) <= vocab


def test_words():
    assert words("The cross's color is the same as a US mailbox.") == [
        "the", "cross", "'s", "color", "is", "the", "same", "as", "a", "us", "mailbox", "."]
    assert words("The circle is red, blue or green.")[-6:] == ["red", ",", "blue", "or",
                                                               "green", "."]


def test_lowres_dataset_folder(tmp_path):
    generate.generate_colors(tmp_path / "a", 2, 9, variant="lowres", tiers=[0, 7])
    generate.generate_colors(tmp_path / "b", 2, 9, variant="lowres", tiers=[0, 7])
    assert (tmp_path / "a" / "items.jsonl").read_bytes() == \
        (tmp_path / "b" / "items.jsonl").read_bytes()
    dataset = load_dataset(tmp_path / "a")
    assert dataset.info["variant"] == "lowres"
    assert len(dataset) == 2 * 2 * len(LOWRES_TEXT_TIERS) * 3
    for item in dataset:
        image = dataset.open_image(item)
        assert image.size == (32, 32)
        assert (tmp_path / "b" / item.image).read_bytes() == \
            (tmp_path / "a" / item.image).read_bytes()
        assert item.answer_vision not in item.extra["answer_text_options"]
    t0 = next(i for i in dataset if i.d_v == 0).extra
    t7 = next(i for i in dataset if i.d_v == 7).extra
    assert t0["noise_sigma"] < t7["noise_sigma"]
    assert t0["target_fraction"] > t7["target_fraction"]
