"""The paper variant of the color dataset: tiers, colors, texts, determinism, atomicity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modprobe.data import colors, generate, load_dataset, texts
from modprobe.data.__main__ import main, parse_tiers
from modprobe.data.palette import COLORS, RGB, WHITE
from modprobe.data.render import SHAPES

N_GROUPS = 4  # groups whose scenes are checked tier by tier


@pytest.fixture(scope="module")
def scenes() -> dict[tuple[int, int], colors.Scene]:
    return {(g, d_v): colors.make_scene(7, colors.plan_group(7, g), d_v)
            for g in range(N_GROUPS) for d_v in range(14)}


def _canvas_masks(scene: colors.Scene) -> tuple[np.ndarray, list[np.ndarray]]:
    target = scene.target.canvas_mask(scene.width, scene.height)
    return target, [d.canvas_mask(scene.width, scene.height) for d in scene.distractors]


@pytest.mark.parametrize("d_v", range(14))
def test_tier_matches_the_table(scenes, d_v):
    spec = colors.VISUAL_TIERS[d_v]
    expected_n = [0, 1, 2, 3, 4, 7, 10, 7, 11, 20, 30, 40, 55, 70][d_v]
    expected_rate = [0, 0, 0, 0, 0, .5, .8, .5, .8, .3, .6, .5, .6, .7][d_v]
    for g in range(N_GROUPS):
        scene = scenes[g, d_v]
        assert (scene.width, scene.height) == ((800, 600) if d_v <= 4 else (224, 224))
        assert len(scene.distractors) == expected_n
        target, distractors = _canvas_masks(scene)
        # Measured from the rasterised masks, independently of the layout's bookkeeping.
        overlapping = sum(bool((target & m).any()) for m in distractors)
        if d_v <= 4:
            assert overlapping == 0
            assert 80 <= scene.target.size <= 200
            masks = [target, *distractors]
            for i in range(len(masks)):
                for j in range(i + 1, len(masks)):
                    assert not (masks[i] & masks[j]).any(), "shapes touch without occlusion"
        else:
            rate = overlapping / expected_n
            assert abs(rate - expected_rate) <= 0.5 / expected_n + 1e-9
            lo, hi = spec.target_area
            assert lo - 1e-9 <= scene.target_fraction() <= hi + 1e-9
        assert scene.target_visible() >= 0.5 - 1e-9


def test_target_area_decreases_with_the_tier(scenes):
    def mean_area(tiers):  # visible pixel area of the target, share of the canvas
        values = []
        for g in range(N_GROUPS):
            for d_v in tiers:
                s = scenes[g, d_v]
                values.append(np.count_nonzero(s.target.mask) / (s.width * s.height))
        return float(np.mean(values))

    big, mid, small = mean_area([5, 6]), mean_area([7, 8]), mean_area(range(9, 14))
    assert big > mid > small


def _pixel_colors(image: Image.Image) -> set[tuple[int, int, int]]:
    arr = np.asarray(image).reshape(-1, 3).astype(np.int64)
    packed = np.unique((arr[:, 0] << 16) | (arr[:, 1] << 8) | arr[:, 2])
    return {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in packed}


def test_colors_in_the_image(scenes):
    for g in range(N_GROUPS):
        plan = colors.plan_group(7, g)
        assert plan.color_vision != plan.color_text
        assert set(plan.distractor_colors) == set(COLORS) - {plan.color_vision, plan.color_text}
        for d_v in range(14):
            scene = scenes[g, d_v]
            seen = _pixel_colors(scene.render())
            assert RGB[plan.color_text] not in seen, "the text color is drawn"
            assert RGB[plan.color_vision] in seen
            allowed = {WHITE, RGB[plan.color_vision]} | {RGB[c] for c in plan.distractor_colors}
            assert seen <= allowed
            for d in scene.distractors:
                assert d.color not in (plan.color_vision, plan.color_text)
                assert d.shape != plan.shape


def test_group_plan_reserves_absent_shapes():
    for g in range(30):
        plan = colors.plan_group(3, g)
        reserved = {plan.shape, plan.hop_shape, plan.other_shape, plan.absent_shape}
        assert len(reserved) == 4
        assert not reserved & set(plan.distractor_shapes)
        assert set(plan.distractor_shapes) | reserved == set(SHAPES)


def test_color_pairs_are_balanced():
    pairs = [(p.color_vision, p.color_text) for p in (colors.plan_group(1, g) for g in range(30))]
    assert sorted(pairs) == sorted(colors.COLOR_PAIRS)


def test_world_objects_are_curated():
    assert set(texts.WORLD_OBJECTS) == set(COLORS)
    assert all(len(objs) >= 4 for objs in texts.WORLD_OBJECTS.values())
    assert "a US mailbox" in texts.WORLD_OBJECTS["blue"]
    everything = [o for objs in texts.WORLD_OBJECTS.values() for o in objs]
    assert len(everything) == len(set(everything)), "an object listed under two colors"
    for objs in texts.WORLD_OBJECTS.values():
        for obj in objs:
            assert not any(c in obj.split() for c in COLORS), f"{obj!r} names its color"


def test_items_texts_and_controls():
    images, items = colors.group_items(5, 2, [0, 9], [0, 1, 2], list(colors.GROUPS))
    plan = colors.plan_group(5, 2)
    assert [p for p, _ in images] == ["images/g0002-v00.png", "images/g0002-v09.png"]
    assert len(items) == 2 * 3 * 3
    by_id = {item.id: item for item in items}
    conflict = by_id["g0002-v09-t0-conflict"]
    assert conflict.question == (f"What color is the {plan.shape}? "
                                 "Please use one word to answer this question.")
    assert conflict.context == f"The {plan.shape} is {plan.color_text}."
    assert (conflict.answer_vision, conflict.answer_text) == (plan.color_vision,
                                                              plan.color_text)
    hop = by_id["g0002-v09-t1-conflict"]
    assert hop.context == (f"The {plan.shape}'s color is the same as a {plan.hop_shape}. "
                           f"The {plan.hop_shape} is {plan.color_text}.")
    assert plan.hop_shape not in hop.extra["distractor_shapes"]
    world = by_id["g0002-v09-t2-conflict"]
    assert world.context == f"The {plan.shape}'s color is the same as {plan.world_object}."
    assert plan.world_object in texts.WORLD_OBJECTS[plan.color_text]

    text_irr = by_id["g0002-v09-t0-text_irrelevant"]
    assert text_irr.shape == plan.shape
    assert text_irr.context == f"The {plan.other_shape} is {plan.color_text}."
    assert plan.other_shape not in text_irr.extra["distractor_shapes"]
    image_irr = by_id["g0002-v09-t0-image_irrelevant"]
    assert image_irr.shape == plan.absent_shape != plan.shape
    assert image_irr.question.startswith(f"What color is the {plan.absent_shape}?")
    assert plan.absent_shape not in image_irr.extra["distractor_shapes"]
    assert image_irr.image == conflict.image
    assert conflict.extra["n_distractors"] == 20


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 11), (b, 11), (c, 12)):
        generate.generate_colors(out, 1, seed)
    assert _digests(a) == _digests(b)
    assert len(_digests(a)) == 14 + 2
    assert (a / "items.jsonl").read_bytes() != (c / "items.jsonl").read_bytes()
    differing = [name for name, digest in _digests(c).items()
                 if name.endswith(".png") and _digests(a).get(name) != digest]
    assert len(differing) == 14


def test_more_groups_or_fewer_tiers_keep_shared_items(tmp_path):
    generate.generate_colors(tmp_path / "one", 1, 4, tiers=range(14))
    generate.generate_colors(tmp_path / "two", 2, 4, tiers=[3, 12], text_tiers=[1])
    one = {i.id: i for i in load_dataset(tmp_path / "one")}
    two = load_dataset(tmp_path / "two")
    shared = [i for i in two if i.extra["group_index"] == 0]
    assert len(shared) == 2 * 3
    for item in shared:
        assert item.to_json() == one[item.id].to_json()
        assert (tmp_path / "two" / item.image).read_bytes() == \
            (tmp_path / "one" / item.image).read_bytes()


def test_interrupted_generation_leaves_no_items_file(tmp_path, monkeypatch):
    real = colors.group_items

    def failing(seed, index, *args):
        if index == 1:
            raise KeyboardInterrupt
        return real(seed, index, *args)

    monkeypatch.setattr(colors, "group_items", failing)
    with pytest.raises(KeyboardInterrupt):
        generate.generate_colors(tmp_path / "x", 3, 0, tiers=[0])
    assert not (tmp_path / "x" / "items.jsonl").exists()
    assert not list((tmp_path / "x").rglob("*.tmp"))


def test_interrupted_overwrite_keeps_the_old_dataset(tmp_path, monkeypatch):
    out = tmp_path / "d"
    generate.generate_colors(out, 1, 0, tiers=[0])
    before = (out / "items.jsonl").read_bytes()
    monkeypatch.setattr(colors, "group_items",
                        lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        generate.generate_colors(out, 2, 5, tiers=[0], overwrite=True)
    assert (out / "items.jsonl").read_bytes() == before


def test_refuses_to_overwrite_without_flag(tmp_path):
    generate.generate_colors(tmp_path, 1, 0, tiers=[0], text_tiers=[0])
    with pytest.raises(FileExistsError, match="overwrite"):
        generate.generate_colors(tmp_path, 1, 0, tiers=[0], text_tiers=[0])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="visual tiers"):
        generate.generate_colors("/nonexistent", 1, 0, tiers=[14])
    with pytest.raises(ValueError, match="text tiers"):
        generate.generate_colors("/nonexistent", 1, 0, text_tiers=[3])
    with pytest.raises(ValueError, match="unknown item kind"):
        generate.generate_colors("/nonexistent", 1, 0, kinds=["conflicts"])


def test_cli_generates_and_validates(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["colors", "--out", str(out), "--groups", "2", "--seed", "3",
                 "--tiers", "0,5", "12-13", "--text-tiers", "0", "--kinds", "conflict",
                 "--quiet"])
    assert code == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["visual_tiers"] == [0, 5, 12, 13] and info["n_items"] == 2 * 4
    assert info["variant"] == "paper" and info["seed"] == 3
    assert info["generator_version"] == generate.GENERATOR_VERSION
    assert main(["validate", str(out)]) == 0
    assert "8 valid items" in capsys.readouterr().out
    assert main(["colors", "--out", str(out), "--groups", "1", "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err


def test_parse_tiers():
    assert parse_tiers(["0-2", "5,7"]) == [0, 1, 2, 5, 7]
