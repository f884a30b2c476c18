"""modprobe.perturb: byte determinism, MD never names the gold, sizes, registry, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modprobe.data.color_tasks import color_task_items
from modprobe.data.render import png_bytes
from modprobe.data.tasks import TaskItem, read_choice
from modprobe.perturb import (
    BUILTIN,
    PerturbationError,
    applicable,
    get_perturbation,
    perturb,
    perturbations,
    processor_image_size,
    register_perturbation,
    unregister_perturbation,
)
from modprobe.testing import FAMILIES


@pytest.fixture(scope="module")
def color_items() -> list[TaskItem]:
    images, items = color_task_items(seed=0, groups=6, variant="lowres", fmt="choice")
    by_path = dict(images)
    return [it.replaced(image=by_path[it.image_file]) if it.image_file else it for it in items]


def _bytes(item: TaskItem) -> bytes:
    image = png_bytes(item.image) if item.image is not None else b""
    return (item.context or "").encode("utf-8") + b"\0" + image


def _fit(items: list[TaskItem], name: str) -> list[TaskItem]:
    return [it for it in items if name in applicable(it)]


@pytest.mark.parametrize("name", BUILTIN)
def test_same_seed_same_bytes_other_seed_other_bytes(name: str, color_items: list[TaskItem]) -> None:
    items = _fit(color_items, name)[:6]
    assert items
    first = [_bytes(perturb(it, name, seed=7, size=(32, 32))) for it in items]
    again = [_bytes(perturb(it, name, seed=7, size=(32, 32))) for it in items]
    assert first == again
    if name not in ("FB", "FW"):  # canvases have no randomness
        other = [_bytes(perturb(it, name, seed=8, size=(32, 32))) for it in items]
        assert other != first
    # the clean item is untouched
    assert all(it.perturbation == "clean" for it in items)


def test_same_bytes_in_a_fresh_process(color_items: list[TaskItem], tmp_path: Path) -> None:
    code = ("import sys, hashlib\n"
            "from modprobe.data.color_tasks import color_task_items\n"
            "from modprobe.data.render import png_bytes\n"
            "from modprobe.perturb import perturb, applicable\n"
            "ims, items = color_task_items(0, 6, 'lowres', 'choice')\n"
            "d = dict(ims)\n"
            "h = hashlib.sha256()\n"
            "for it in items:\n"
            "    it = it.replaced(image=d[it.image_file]) if it.image_file else it\n"
            "    for n in applicable(it):\n"
            "        p = perturb(it, n, seed=3, size=(32, 32))\n"
            "        h.update((p.context or '').encode()); h.update(png_bytes(p.image) if p.image else b'')\n"
            "print(h.hexdigest())\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": str(s), "PATH": "",
                                            "PYTHONPATH": str(Path(__file__).parent.parent)}
                           ).stdout for s in (1, 2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64


def test_md_never_names_the_correct_option(color_items: list[TaskItem]) -> None:
    named_wrong = 0
    for item in _fit(color_items, "MD"):
        for seed in range(40):
            text = perturb(item, "MD", seed=seed).context
            assert read_choice(text, item.options) != item.options.index(item.answer)
            assert item.answer not in text.lower().split(" ")[-1]
            named_wrong += read_choice(text, item.options) is not None
    assert named_wrong > 0  # it does name a (wrong) option


def test_md_skips_options_that_contain_the_gold() -> None:
    item = TaskItem("x", "Which color?", "red", "image", image=Image.new("RGB", (8, 8)),
                    options=["red", "dark red", "blue"])
    for seed in range(30):
        assert perturb(item, "MD", seed=seed).context == "This image shows blue."
    only = TaskItem("y", "Which color?", "red", "image", image=Image.new("RGB", (8, 8)),
                    options=["red", "dark red"])
    with pytest.raises(PerturbationError, match="would name the gold"):
        perturb(only, "MD")


def test_uf_and_ocr_never_name_an_option(color_items: list[TaskItem]) -> None:
    for item in _fit(color_items, "UF")[:10]:
        for seed in range(10):
            for name in ("UF", "OCR"):
                text = perturb(item, name, seed=seed).context
                assert read_choice(text, item.options) is None, (name, text)
    item = _fit(color_items, "UF")[0]
    assert perturb(item, "UF", seed=0, sentences=5).context.count(".") >= 5
    with pytest.raises(PerturbationError, match="bank"):
        perturb(item, "UF", sentences=3, bank=["One fact.", "The sky is red."])


def test_text_perturbation_prepends_to_an_existing_context() -> None:
    item = TaskItem("x", "Q?", "red", "image", image=Image.new("RGB", (8, 8)), context="Given.",
                    options=["red", "blue"])
    out = perturb(item, "MD", seed=0)
    assert out.context == "This image shows blue.\nGiven." and out.image is item.image


@pytest.mark.parametrize("family", FAMILIES)
def test_image_sizes_follow_the_processor(family: str, color_items: list[TaskItem]) -> None:
    from modprobe.testing.tiny import tiny_processor

    processor = tiny_processor(family)
    width, height = processor_image_size(processor)
    item = _fit(color_items, "RP")[0]
    for name in ("RP", "RI", "FB", "FW"):
        image = perturb(item, name, seed=0, size=(width, height)).image
        assert image.size == (width, height) and image.mode == "RGB"
    # the processor leaves an image of that size as it is (no resize, no crop)
    pixels = processor.image_processor([image], return_tensors="pt")
    if "image_grid_thw" in pixels:
        patch = processor.image_processor.patch_size
        _, rows, cols = pixels["image_grid_thw"][0].tolist()
        assert (cols * patch, rows * patch) == (width, height)
    else:
        assert tuple(pixels["pixel_values"].shape[-2:]) == (height, width)


def test_image_sizes_of_the_generic_families() -> None:
    from modprobe.testing.families import TINY_FAMILIES

    sized = 0
    for name, family in TINY_FAMILIES.items():
        _, processor = family.build()
        try:
            width, height = processor_image_size(processor)
        except PerturbationError as err:  # a stand-in processor without a size
            assert "pass size=(w, h)" in str(err), name
            continue
        sized += 1
        assert width == height > 0, name
        pixels = processor.image_processor([Image.new("RGB", (width, height))],
                                           return_tensors="pt")
        if "image_grid_thw" in pixels:  # dynamic resolution: the grid covers the image
            patch = processor.image_processor.patch_size
            _, rows, cols = pixels["image_grid_thw"][0].tolist()
            assert (cols * patch, rows * patch) == (width, height), name
        elif name != "idefics3":  # Idefics3 tiles the image; the others take it as it is
            assert tuple(pixels["pixel_values"].shape[-2:]) == (height, width), name
    assert sized >= 5


def test_default_size_is_the_items_image_else_336(color_items: list[TaskItem]) -> None:
    text_item = _fit(color_items, "RP")[0]
    assert perturb(text_item, "FB").image.size == (336, 336)
    with_image = text_item.replaced(image=Image.new("RGB", (40, 30)))
    assert perturb(with_image, "RP").image.size == (40, 30)


def test_ri_scene_never_draws_the_asked_shape() -> None:
    from modprobe.perturb import scene_without

    # a mask of what was drawn: only non-background pixels; a circle subject never appears
    item = TaskItem("x", "Q?", "red", "text", context="The circle is red.", subject="circle",
                    options=["red", "blue"])
    seen_shapes = set()
    import modprobe.perturb.image as image_module

    drawn: list[str] = []
    original = image_module.draw_shape
    image_module.draw_shape = lambda draw, shape, *a, **k: (drawn.append(shape),
                                                           original(draw, shape, *a, **k))
    try:
        for seed in range(30):
            perturb(item, "RI", seed=seed, size=(64, 64))
    finally:
        image_module.draw_shape = original
    seen_shapes = set(drawn)
    assert drawn and "circle" not in seen_shapes and len(seen_shapes) > 3
    assert scene_without(np.random.default_rng(0), (20, 10), None).size == (20, 10)


def test_ri_from_a_folder(tmp_path: Path) -> None:
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (50, 40), color).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    item = TaskItem("x", "Q?", "red", "text", context="The circle is red.")
    picks = {perturb(item.replaced(id=f"i{k}"), "RI", seed=0, folder=tmp_path,
                     size=(16, 16)).image.getpixel((8, 8)) for k in range(30)}
    assert picks == {(255, 0, 0), (0, 255, 0), (0, 0, 255)}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"nope")
    with pytest.raises(PerturbationError, match="no usable images"):
        perturb(item, "RI", folder=empty)


def test_registry_lists_extends_and_rejects() -> None:
    assert {k: perturbations()[k] for k in BUILTIN} == {
        "UF": "text", "MD": "text", "OCR": "text", "RP": "image", "RI": "image", "FB": "image",
        "FW": "image"}
    assert set(perturbations("image")) >= {"RP", "RI", "FB", "FW"}
    with pytest.raises(PerturbationError, match=r"unknown perturbation 'XX'; known: UF, MD"):
        get_perturbation("XX")

    def gray(item: TaskItem, rng: np.random.Generator, size: int = 8) -> TaskItem:
        level = int(rng.integers(0, 256))
        return item.replaced(image=Image.new("RGB", (size, size), (level,) * 3))

    register_perturbation("GRAY_TEST", "image", gray, "a gray canvas", overwrite=True)
    try:
        _check_registered_gray(gray)
    finally:
        unregister_perturbation("GRAY_TEST")
    assert "GRAY_TEST" not in perturbations()


def _check_registered_gray(gray: object) -> None:
    item = TaskItem("x", "Q?", "red", "text", context="The circle is red.")
    out = perturb(item, "GRAY_TEST", seed=1)
    assert out.perturbation == "GRAY_TEST" and out.image.size == (8, 8)
    assert png_bytes(out.image) == png_bytes(perturb(item, "GRAY_TEST", seed=1).image)
    assert get_perturbation("GRAY_TEST").span == "image" and get_perturbation("MD").span == "context"
    with pytest.raises(PerturbationError, match="exists"):
        register_perturbation("GRAY_TEST", "image", gray)
    with pytest.raises(PerturbationError, match="relevant modality"):
        perturb(item, "MD")


def test_clean_text_heavy_prompt_has_a_noise_image_by_default_and_none_on_request(
        tiny_model, color_items: list[TaskItem]) -> None:
    from modprobe.perturb import text_baseline
    from modprobe.spans import SPAN_NAMES
    from modprobe.study.interference import InterferenceConfig, condition_variants

    loaded = tiny_model("llava")
    text_item = next(it for it in color_items if it.relevant == "text")
    image_item = next(it for it in color_items if it.relevant == "image")

    def image_tokens(item: TaskItem) -> int:
        batch = loaded.encode([item.prompt()])
        codes = loaded.spans(batch).codes
        return int((codes == SPAN_NAMES.index("image")).sum())

    for baseline, has_image in (("noise", True), ("none", False)):
        config = InterferenceConfig(model="m", data=None, out="o", text_baseline=baseline,
                                    draws=1)
        variants = [v for _, _, v in condition_variants([text_item], ["RI", "FB"], config,
                                                        (32, 32))]
        clean = variants[0]
        assert clean.perturbation == "clean"
        assert (image_tokens(clean) > 0) is has_image
        assert [v.perturbation for v in variants[1:]] == ["RI", "FB"]
        assert all(image_tokens(v) > 0 for v in variants[1:])
    # the noise is seeded, and another stream than RP's
    once = text_baseline(text_item, "noise", seed=3, size=(16, 16))
    assert _bytes(once) == _bytes(text_baseline(text_item, "noise", seed=3, size=(16, 16)))
    assert _bytes(once) != _bytes(perturb(text_item, "RP", seed=3, size=(16, 16)))
    assert _bytes(once) != _bytes(text_baseline(text_item, "noise", seed=4, size=(16, 16)))
    # image-heavy items keep their own image
    assert text_baseline(image_item, "noise") is image_item
    with pytest.raises(PerturbationError, match="--text-baseline must be one of noise, none"):
        text_baseline(text_item, "gray")
