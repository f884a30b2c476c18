"""modprobe.data.tasks and color_tasks: formats, multiple-choice reading, the task schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from modprobe.data import DatasetError
from modprobe.data.color_tasks import color_task_items, generate_color_tasks
from modprobe.data.tasks import UNREADABLE, TaskItem, load_tasks, read_choice

OPTIONS = ["red", "blue", "green", "dark red"]


@pytest.mark.parametrize("answer, expected", [
    # letters
    ("B", 1), (" b", 1), ("(C)", 2), ("C.", 2), ("A) ", 0), ("The answer is D", 3),
    ("Answer: b", 1), ("a", 0),
    # words
    ("blue", 1), (" Blue.", 1), ("It is green.", 2), ("dark red", 3), ("Dark Red!", 3),
    ("red", 0),
    # both, agreeing / disagreeing
    ("B. blue", 1), ("(A) red", 0), ("B. green", None), ("A. dark red", None),
    # neither / too many
    ("purple", None), ("", None), (None, None), (float("nan"), None), ("E", None),
    ("red or blue", None), ("a red one", 0),
])
def test_read_choice(answer: object, expected: int | None) -> None:
    assert read_choice(answer, OPTIONS) == expected


def test_read_choice_aliases_for_first_tokens() -> None:
    assert read_choice("gold", ["goldfish", "shark"]) is None
    assert read_choice("gold", ["goldfish", "shark"], aliases={"gold": 0}) == 0


def test_item_read_and_gold_categories() -> None:
    image = Image.new("RGB", (8, 8))
    mc = TaskItem("q", "What color?", "blue", "image", image=image, options=OPTIONS,
                  format="choice")
    assert mc.read("B") == "blue" and mc.read("blue") == "blue" and mc.gold() == "blue"
    assert mc.target() == "B" and mc.replaced(answer="Blue").gold() == "blue"
    assert mc.read("purple") == UNREADABLE and mc.read("B. red") == UNREADABLE
    assert "A. red\nB. blue\nC. green\nD. dark red\nAnswer with" in mc.question_text()
    assert mc.prompt().images == [image]
    open_ = TaskItem("o", "What color?", "Blue", "image", image=image)
    assert open_.read(" blue.") == open_.gold() == "blue" and open_.read("  ") == UNREADABLE
    assert open_.target() == "Blue"


def test_item_errors_are_one_line_and_name_the_field() -> None:
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match="gold answer 'pink' is not among the options"):
        TaskItem("q", "Q?", "pink", "image", image=image, options=OPTIONS, format="choice")
    with pytest.raises(ValueError, match="image-heavy item needs its image"):
        TaskItem("q", "Q?", "red", "image")
    with pytest.raises(ValueError, match="text-heavy item needs its description"):
        TaskItem("q", "Q?", "red", "text", image=image)
    with pytest.raises(ValueError, match="relevant"):
        TaskItem("q", "Q?", "red", "audio", image=image)


def _write(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_load_tasks_reports_every_problem_with_line_and_field(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    _write(tmp_path, [
        {"id": "1", "question": "Q?", "answer": "red", "relevant": "image", "image": "a.png"},
        {"id": "2", "question": "Q?", "answer": "pink", "relevant": "image", "image": "a.png",
         "options": ["red", "blue"], "format": "choice"},
        {"id": "3", "question": "Q?", "answer": "red", "relevant": "text"},
        {"id": "4", "question": "Q?", "answer": "red", "relevant": "image"},
        {"id": "5", "question": "Q?", "answer": "red", "relevant": "image", "image": "b.png"},
        {"id": "1", "question": "Q?", "answer": "red", "relevant": "image", "image": "a.png"},
    ])
    with pytest.raises(DatasetError) as info:
        load_tasks(tmp_path)
    text = str(info.value)
    assert "line 2, field 'answer': gold answer 'pink' is not among the options" in text
    assert "line 3, field 'context'" in text and "line 4, field 'image'" in text
    assert "line 5, field 'image': file 'b.png' not found" in text
    assert "line 6, field 'id': duplicate id '1'" in text
    assert len(info.value.errors) == 5


def test_color_tasks_are_deterministic_and_well_formed(tmp_path: Path) -> None:
    path = generate_color_tasks(tmp_path / "a", groups=3, seed=4)
    again = generate_color_tasks(tmp_path / "b", groups=3, seed=4)
    assert path.read_bytes() == again.read_bytes()
    for image in (tmp_path / "a" / "images").iterdir():
        assert image.read_bytes() == (tmp_path / "b" / "images" / image.name).read_bytes()
    tasks = load_tasks(tmp_path / "a")
    heavy = [t for t in tasks if t.relevant == "image"]
    light = [t for t in tasks if t.relevant == "text"]
    assert len(heavy) == 3 * 8 and len(light) == 3 * 3
    for item in tasks:
        assert item.answer in item.options and len(item.options) == 4 and item.cluster
        assert item.format == "choice"
    assert all(t.context is None and t.image_file for t in heavy)
    assert all(t.image_file is None and t.answer in t.context or t.context for t in light)
    opened = tasks.open(heavy[0])
    assert opened.image.size == (32, 32)
    with pytest.raises(FileExistsError):
        generate_color_tasks(tmp_path / "a", groups=3, seed=4)
    _, open_items = color_task_items(0, 1, "paper", "open", tiers=[5])
    assert open_items[0].format == "open" and "one word" in open_items[0].question
    with pytest.raises(ValueError, match="name more than one color"):
        color_task_items(0, 1, "lowres", text_tiers=[3])


def test_data_cli_writes_and_validates_task_folders(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.data import generate_colors
    from modprobe.data.__main__ import main

    assert main(["tasks", "--out", str(tmp_path / "t"), "--groups", "1", "--format", "open"]) == 0
    assert "wrote 11 task items" in capsys.readouterr().out
    assert main(["validate-tasks", str(tmp_path / "t")]) == 0
    assert "11 valid task items (relevant image: 8, text: 3)" in capsys.readouterr().out
    assert main(["tasks", "--out", str(tmp_path / "t"), "--groups", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # a conflict dataset given where tasks are expected: one problem, named, with the fix
    generate_colors(tmp_path / "conflict", groups=1, seed=0, variant="lowres", tiers=[0],
                    text_tiers=[0])
    with pytest.raises(DatasetError, match="holds a conflict dataset") as info:
        load_tasks(tmp_path / "conflict")
    assert len(info.value.errors) == 1 and "docs/interference.md" in str(info.value)
