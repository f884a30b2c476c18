"""The dataset schema: every kind of error is reported with its line and field, all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from modprobe.data import Dataset, DatasetError, Item, load_dataset, write_dataset
from modprobe.data.dataset import CONDITIONS


def _record(i: int, **changes) -> dict:
    record = {
        "id": f"item-{i}", "group": "conflict", "task": "color", "image": "images/a.png",
        "question": "What color is the circle? Please use one word to answer this question.",
        "context": "The circle is blue.", "answer_vision": "red", "answer_text": "blue",
        "d_v": 0, "d_t": 0, "shape": "circle",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not _DROP}


_DROP = object()


def _folder(tmp_path: Path, lines: list[object | str]) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.new("P", (8, 6), 3).save(tmp_path / "images" / "a.png")  # a palette PNG
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                   for line in lines)
    (tmp_path / "items.jsonl").write_text(text, encoding="utf-8")
    return tmp_path


def _errors(tmp_path: Path, lines: list[object | str]) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(_folder(tmp_path, lines))
    return info.value


def _one(err: DatasetError) -> str:
    assert len(err.errors) == 1, err.errors
    return str(err)


def test_valid_folder_loads(tmp_path):
    ds = load_dataset(_folder(tmp_path, [_record(1), _record(2, extra_field=[1, 2]), ""]))
    assert isinstance(ds, Dataset) and len(ds) == 2
    assert ds[1].extra == {"extra_field": [1, 2]}
    assert ds.by_id("item-1").answer_text == "blue"
    assert ds.info == {}


@pytest.mark.parametrize("field", ["id", "group", "task", "image", "question", "context",
                                   "answer_vision", "answer_text", "d_v", "d_t", "shape"])
def test_missing_field(tmp_path, field):
    message = _one(_errors(tmp_path, [_record(1), _record(2, **{field: _DROP})]))
    assert f"items.jsonl line 2, field '{field}': missing" in message


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("d_v", "3", "expected an integer, got str"),
    ("d_t", 1.5, "expected an integer, got float"),
    ("d_v", True, "expected an integer, got bool"),
    ("answer_text", 3, "expected a string, got int"),
    ("id", None, "expected a string, got NoneType"),
    ("occlusion_rate", "high", "expected a number, got str"),
    ("answer_text_options", "red", "expected a list, got str"),
])
def test_wrong_type(tmp_path, field, value, expected):
    message = _one(_errors(tmp_path, [_record(1, **{field: value})]))
    assert f"line 1, field '{field}': {expected}" in message


def test_unknown_group(tmp_path):
    message = _one(_errors(tmp_path, [_record(1), _record(2), _record(3, group="conflicts")]))
    assert "line 3, field 'group': unknown value 'conflicts'" in message
    assert "conflict, text_irrelevant, image_irrelevant" in message


def test_missing_image_file(tmp_path):
    message = _one(_errors(tmp_path, [_record(1, image="images/nope.png")]))
    assert "line 1, field 'image': file 'images/nope.png' not found" in message


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.png", "C:/x.png"])
def test_image_outside_the_folder(tmp_path, path):
    message = _one(_errors(tmp_path, [_record(1, image=path)]))
    assert "line 1, field 'image':" in message


def test_duplicate_id(tmp_path):
    message = _one(_errors(tmp_path, [_record(1), _record(2), _record(1)]))
    assert "line 3, field 'id': duplicate id 'item-1' (first on line 1)" in message


def test_conflict_needs_two_answers(tmp_path):
    message = _one(_errors(tmp_path, [_record(1, answer_text="Red")]))
    assert "line 1, field 'answer_text': equals answer_vision" in message
    # Controls may agree (they are not conflicts).
    load_dataset(_folder(tmp_path, [_record(1, group="text_irrelevant", answer_text="red")]))


def test_invalid_json_and_non_objects(tmp_path):
    err = _errors(tmp_path, [_record(1), '{"id": "x",', "[1, 2]"])
    text = str(err)
    assert "line 2: not valid JSON" in text
    assert "line 3: expected a JSON object, got list" in text
    assert len(err.errors) == 2


def test_ranges_and_empty_values(tmp_path):
    err = _errors(tmp_path, [_record(1, d_v=-1, occlusion_rate=1.5, context="  ",
                                     question="", answer_text_options=["red", ""])])
    text = str(err)
    assert "line 1, field 'd_v': must be >= 0" in text
    assert "line 1, field 'occlusion_rate': must lie in [0, 1]" in text
    assert "line 1, field 'context': empty" in text
    assert "line 1, field 'question': empty" in text
    assert "line 1, field 'answer_text_options': must be a list of non-empty strings" in text


def test_every_error_at_once(tmp_path):
    err = _errors(tmp_path, [
        _record(1, answer_vision=_DROP),
        _record(2, group="both", d_t="0"),
        _record(3),
        _record(3, image="images/missing.png"),
        "not json",
    ])
    found = {(e.line, e.field) for e in err.errors}
    assert found == {(1, "answer_vision"), (2, "group"), (2, "d_t"), (4, "id"),
                     (4, "image"), (5, None)}
    assert str(err).startswith(f"dataset {tmp_path} has 6 errors")
    for e in err.errors:
        assert str(e) in str(err)


def test_folder_level_errors(tmp_path):
    with pytest.raises(DatasetError, match="items.jsonl: not found"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="holds no items"):
        load_dataset(_folder(tmp_path, [""]))
    _folder(tmp_path, [_record(1)])
    (tmp_path / "dataset.json").write_text("{oops")
    with pytest.raises(DatasetError, match="dataset.json line 1: not valid JSON"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("[]")
    with pytest.raises(DatasetError, match="dataset.json: must hold a JSON object"):
        load_dataset(tmp_path)


def test_long_error_lists_are_summarised(tmp_path):
    err = _errors(tmp_path, [_record(i, group="x") for i in range(250)])
    assert len(err.errors) == 250
    assert "and 50 more (see DatasetError.errors)" in str(err)


def test_round_trip_and_atomic_write(tmp_path):
    _folder(tmp_path, [])
    items = [Item.from_record(_record(i, n_distractors=3, meta={"a": 1})) for i in range(3)]
    path = write_dataset(tmp_path, items, {"name": "mine", "seed": 1})
    assert path == tmp_path / "items.jsonl"
    assert not list(tmp_path.glob(".*.tmp"))
    ds = load_dataset(tmp_path)
    assert [i.to_record() for i in ds] == [i.to_record() for i in items]
    assert ds.info["name"] == "mine" and ds.info["n_items"] == 3
    assert ds.info["n_items_by_group"] == {"conflict": 3}
    assert list(ds.to_frame().columns[:3]) == ["id", "group", "task"]


def test_open_image_and_prompts(tmp_path):
    ds = load_dataset(_folder(tmp_path, [_record(1)]))
    item = ds[0]
    image = ds.open_image(item)
    assert image.mode == "RGB" and image.size == (8, 6)
    parts = ds.prompts(item)
    assert tuple(parts) == CONDITIONS == ("vision", "text", "multi")
    assert parts["vision"][:2] == (item.question, None) and parts["vision"][2] is not None
    assert parts["text"] == (item.question, item.context, None)
    assert parts["multi"][:2] == (item.question, item.context)
    assert parts["multi"][2].mode == "RGB"
    only_conflicts = ds.filter(lambda i: i.group == "conflict")
    assert len(only_conflicts) == 1 and only_conflicts.root == ds.root


def test_prompts_feed_the_adapter_prompt(tmp_path):
    base = pytest.importorskip("modprobe.adapters.base")
    ds = load_dataset(_folder(tmp_path, [_record(1)]))
    for condition, parts in ds.prompts(ds[0]).items():
        prompt = base.Prompt.for_condition(condition, *parts)
        assert prompt.question == ds[0].question
        assert (prompt.context is None) == (condition == "vision")
        assert len(prompt.images) == (0 if condition == "text" else 1)
