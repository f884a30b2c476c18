"""Bad input, second round: files, templates, interference tables and options, run-folder
locks, checkpoints and loading. Each refusal: one line naming the file, field or option,
and nothing on disk changed (or no run folder left behind)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_helpers import copy_tree, raises_unchanged, refused

from modprobe.data.color_tasks import generate_color_tasks
from modprobe.data.tasks import load_tasks
from modprobe.interference import main as interference_main


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("round2") / "tasks"
    generate_color_tasks(root, groups=1, seed=0, variant="lowres", fmt="choice",
                         tiers=[3], text_tiers=[1])
    return root


@pytest.fixture
def model(tiny_dir: Callable[..., Path]) -> Path:
    return tiny_dir("llava")


def _edit_first_item(folder: Path, **changes: object) -> None:
    lines = (folder / "items.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record.update(changes)
    lines[0] = json.dumps(record)
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ files
def _latin1_items(folder: Path) -> None:
    text = (folder / "items.jsonl").read_text(encoding="utf-8")
    (folder / "items.jsonl").write_bytes(text.replace("What", "Wh\u00e4t").encode("latin-1"))


@pytest.mark.parametrize(("damage", "names"), [
    (_latin1_items, ["items.jsonl", "not UTF-8"]),
    (lambda f: (f / "dataset.json").write_bytes(b'{"name": "caf\xe9"}'),
     ["dataset.json", "not UTF-8"]),
    (lambda f: (f / "dataset.json").write_text("{broken"), ["dataset.json", "not valid JSON"]),
])
def test_task_files_in_latin1_or_corrupt_json_name_the_file(
        damage: Callable[[Path], object], names: list[str], tasks: Path, model: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.data.__main__ import main as data_main

    broken = copy_tree(tasks, tmp_path / "tasks")
    damage(broken)
    refused(data_main, ["validate-tasks", str(broken)], capsys, names, [tmp_path])
    refused(interference_main, ["--model", str(model), "--data", str(broken), "--out",
                                str(tmp_path / "run"), "--quiet"], capsys, names, [tmp_path])


def test_sabotage_names_a_latin1_source_and_a_corrupt_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.sabotage import main as sabotage_main

    (tmp_path / "agents.jsonl").write_bytes(b'{"item": "caf\xe9"}\n')
    refused(sabotage_main, [str(tmp_path / "agents.jsonl"), "--out", str(tmp_path / "r")],
            capsys, ["agents.jsonl", "not UTF-8"], [tmp_path])
    run = tmp_path / "run"
    run.mkdir()
    (run / "items.csv").write_text("id,perturbation\n")
    for damaged in (b"{broken", b"\xff\xfe{}"):
        (run / "manifest.json").write_bytes(damaged)
        refused(sabotage_main, [str(run), "--out", str(tmp_path / "r")], capsys,
                [str(run / "manifest.json"), "damaged"], [tmp_path])


# ------------------------------------------------------------------ templates and ids
@pytest.mark.parametrize(("field", "value", "names"), [
    ("misleading_template", "The {colour} is {option}.",
     ["misleading_template", "item 'g0000-v03-image'", "{colour}"]),
    ("misleading_template", "The {subject is {option}.", ["misleading_template", "brace"]),
    ("misleading_template", "The {subject} is {option}}.", ["misleading_template", "brace"]),
    ("id", "   ", ["field 'id'", "whitespace"]),
    ("id", "", ["field 'id'", "empty"]),
    ("id", "item\ud800", ["field 'id'", "lone surrogate"]),
])
def test_bad_templates_and_ids_are_refused_at_validation(
        field: str, value: str, names: list[str], tasks: Path, model: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy_tree(tasks, tmp_path / "tasks")
    _edit_first_item(broken, **{field: value})
    refused(interference_main, ["--model", str(model), "--data", str(broken), "--out",
                                str(tmp_path / "run"), "--quiet"], capsys,
            ["items.jsonl line 1", *names], [tmp_path])
    item = load_tasks(tasks).items[0]
    with pytest.raises(ValueError, match=field):
        item.replaced(**{field: value})


def test_a_conflict_dataset_refuses_blank_and_surrogate_ids(tmp_path: Path) -> None:
    from modprobe.data import DatasetError, generate_colors, load_dataset

    data = tmp_path / "colors"
    generate_colors(data, groups=1, seed=0, variant="lowres", tiers=[0], text_tiers=[0])
    for value, name in (("  ", "empty"), ("x\udfff", "holds a lone surrogate")):
        _edit_first_item(data, id=value)
        raises_unchanged(lambda: load_dataset(data), DatasetError,
                         f"line 1, field 'id': {name}", [tmp_path])


# ------------------------------------------------------------------ interference
def test_perturb_twice_is_refused_and_case_is_normalised(
        tasks: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for given in ("MD,MD", "MD,md"):
        refused(interference_main, ["--model", str(model), "--data", str(tasks), "--perturb",
                                    given, "--out", str(tmp_path / "run"), "--quiet"], capsys,
                ["--perturb", "MD more than once"], [tmp_path])
    from modprobe.perturb import perturbation_names

    assert perturbation_names(["md", " uf", "FB"]) == ["MD", "UF", "FB"]


def _table(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "predictions.csv"
    path.write_text("\n".join(["id,perturbation,answer,gold", *rows]) + "\n")
    return path


def test_table_form_normalises_perturbation_case(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(tmp_path, ["a,clean,red,red", "a,MD,blue,red", "b,Clean,red,red",
                              "b,md,red,red"])
    assert interference_main([str(table), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines if "accuracy=" in line] == ["clean", "MD"]
    assert "MD: accuracy=0.500" in "\n".join(lines)
    duplicated = _table(tmp_path, ["a,clean,red,red", "a,MD,blue,red", "a,md,blue,red"])
    refused(interference_main, [str(duplicated), "--out", str(tmp_path / "o2")], capsys,
            ["two rows", "'MD'"], [tmp_path])


@pytest.mark.parametrize(("rows", "names"), [
    (["a,clean,red,", "a,MD,blue,red"], ["row 2", "gold is empty"]),
    (["a,clean,red,red", "a,,blue,red"], ["row 3", "perturbation is empty"]),
    (["a,clean,red,red", "  ,MD,blue,red"], ["row 3", "id is empty"]),
])
def test_table_form_refuses_empty_cells_naming_the_row(
        rows: list[str], names: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(tmp_path, rows)
    refused(interference_main, [str(table), "--out", str(tmp_path / "out")], capsys,
            ["predictions.csv", *names], [tmp_path])


# ------------------------------------------------------------------ one run per folder
_SLOW_CHILD = """
import sys, time
from modprobe.study import driver
write = driver.write_chunk
def slow(folder, tables):
    write(folder, tables)
    time.sleep(120)  # hold the run folder while the test tries a second run in it
driver.write_chunk = slow
from modprobe.interference import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_runs_in_one_folder_at_once_the_second_refuses(
        tasks: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = ["--model", str(model), "--data", str(tasks), "--perturb", "MD", "--batch-size",
            "1", "--bootstrap", "20", "--no-figures", "--quiet", "--out", str(out)]
    child = subprocess.Popen([sys.executable, "-c", _SLOW_CHILD, *args],
                             env=dict(os.environ, PYTHONUNBUFFERED="1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while not (out / "chunks" / "00000" / "items.csv").exists():
            assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
            assert time.time() < deadline, "the first run wrote no chunk in time"
            time.sleep(0.05)
        capsys.readouterr()
        assert interference_main([*args, "--resume"]) == 2
        err = capsys.readouterr().err
        assert "in use by another modprobe process" in err and str(out) in err, err
        assert not (out / "chunks" / "00001").exists(), "the second run computed a chunk"
    finally:
        child.kill()
        child.wait()
    # the lock dies with its process: the killed run resumes
    assert interference_main([*args, "--resume"]) == 0
    assert (out / "items.parquet").is_file()  # the default table format


# ------------------------------------------------------------------ API arguments
def test_prompt_refuses_one_image_without_a_list() -> None:
    from PIL import Image

    from modprobe.adapters.base import AdapterError, Prompt

    img = Image.new("RGB", (8, 8))
    with pytest.raises(AdapterError, match=r"list of PIL images.*images=\[img\]"):
        Prompt("What color?", images=img)  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match="got a str"):
        Prompt("What color?", images="cat.png")  # type: ignore[arg-type]
    assert Prompt("What color?", images=[img]).images == [img]


@pytest.mark.parametrize("top_k", [-1, 0, 2.5, True, "5"])
def test_capture_refuses_a_bad_top_k(top_k: object, tiny_model: Callable[..., object]) -> None:
    from modprobe.adapters.base import Prompt
    from modprobe.capture import CaptureOptionError, capture
    from modprobe.errors import ModprobeError

    assert issubclass(CaptureOptionError, ModprobeError)
    with pytest.raises(CaptureOptionError, match=rf"top_k must be a positive integer.*{top_k!r}"):
        capture(tiny_model("llava"), [Prompt("What color?")], top_k=top_k)  # type: ignore[arg-type]


# ------------------------------------------------------------------ fine-tuning runs
@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step LoRA run on the organism, checkpoints at steps 2 and 4."""
    import modprobe
    from modprobe.finetune import TrainConfig, train

    root = tmp_path_factory.mktemp("ft-round2")
    data = root / "tasks"
    generate_color_tasks(data, groups=1, seed=0, variant="lowres", fmt="open")
    out = root / "run"
    # one group cannot be split: train on everything (holdout=0)
    train(modprobe.load("organism", device="cpu"), load_tasks(data),
          TrainConfig(out=str(out), steps=4, batch_size=4, learning_rate=1e-2, threads=1,
                      checkpoint_every=2, holdout=0), progress=False)
    return out


def _adapter(run: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "adapter_model.safetensors"))


def test_load_run_with_a_damaged_adapter_or_config_is_one_error(finetuned: Path,
                                                                tmp_path: Path) -> None:
    import modprobe
    from modprobe.loading import ModelLoadError

    run = copy_tree(finetuned, tmp_path / "run")
    adapter = run / "model" / "adapter_model.safetensors"
    data = adapter.read_bytes()
    adapter.write_bytes(data[: len(data) // 2])
    raises_unchanged(lambda: modprobe.load(run, device="cpu"), ModelLoadError,
                     "adapter in .* cannot be read", [tmp_path])
    adapter.write_bytes(data)
    config = run / "model" / "adapter_config.json"
    original = config.read_text()
    config.write_text(original[: len(original) // 2])
    raises_unchanged(lambda: modprobe.load(run, device="cpu"), ModelLoadError,
                     "adapter_config.json' is not valid JSON", [tmp_path])
    for itself in (run, run / "model"):
        config.write_text(json.dumps({**json.loads(original),
                                      "base_model_name_or_path": str(itself)}))
        raises_unchanged(lambda: modprobe.load(run, device="cpu"), ModelLoadError,
                         "leads back to itself", [tmp_path])


def test_load_run_refuses_changed_base_weights(finetuned: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    import modprobe
    from modprobe.loading import LOCAL_ALIASES, ModelLoadError

    run = copy_tree(finetuned, tmp_path / "run")
    base = copy_tree(LOCAL_ALIASES["organism"], tmp_path / "base")
    config = run / "model" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()),
                                  "base_model_name_or_path": str(base)}))
    assert isinstance(modprobe.load(run, device="cpu"), modprobe.LoadedModel)  # same weights
    # the model weights, not the tuned-lens translators that sit beside them
    weights = next(p for p in base.glob("*.safetensors") if p.name != "tuned_lens.safetensors")
    tensors = load_file(str(weights))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, str(weights), metadata={"format": "pt"})
    raises_unchanged(lambda: modprobe.load(run, device="cpu"), ModelLoadError,
                     r"not the one the run .* was trained on.*verify_base=False", [tmp_path])
    merged = modprobe.load(run, device="cpu", verify_base=False)
    assert torch.is_tensor(next(merged.module.parameters()))


def test_a_finished_run_without_its_model_folder_says_so(finetuned: Path,
                                                        tmp_path: Path) -> None:
    import shutil

    import modprobe

    run = copy_tree(finetuned, tmp_path / "run")
    shutil.rmtree(run / "model")
    error = raises_unchanged(lambda: modprobe.load(run, device="cpu"),
                             modprobe.ModelNotFoundError, "finished, but its model folder",
                             [tmp_path])
    assert "has not finished" not in str(error)


def test_resume_skips_a_truncated_newest_checkpoint_aloud(finetuned: Path,
                                                          tmp_path: Path) -> None:
    """A run killed after its step-4 checkpoint, whose checkpoint was then cut short,
    resumes from step 2 and ends with the weights of the uninterrupted run."""
    import shutil

    import torch

    import modprobe
    from modprobe.finetune import TrainConfig, train

    run = copy_tree(finetuned, tmp_path / "run")
    shutil.rmtree(run / "model")
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    newest = run / "checkpoints" / "step-0000004" / "weights.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    data = finetuned.parent / "tasks"
    config = TrainConfig(out=str(run), steps=4, batch_size=4, learning_rate=1e-2, threads=1,
                         checkpoint_every=2, holdout=0, resume=True)
    with pytest.warns(UserWarning, match=r"step-0000004 is damaged.*step-0000002"):
        train(modprobe.load("organism", device="cpu"), load_tasks(data), config,
              progress=False)
    want, got = _adapter(finetuned), _adapter(run)
    assert want.keys() == got.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)  # type: ignore[arg-type]

    # no intact checkpoint left: one clear error
    from modprobe.finetune.checkpoint import CheckpointError

    shutil.rmtree(run / "model")
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    for step in ("step-0000002", "step-0000004"):
        state = run / "checkpoints" / step / "state.json"
        if state.exists():
            state.write_text("{")
    with pytest.raises(CheckpointError, match="no intact older checkpoint.*new --out"):
        train(modprobe.load("organism", device="cpu"), load_tasks(data), config,
              progress=False)


# ------------------------------------------------------------------ refusals found late
def test_impossible_perturbations_are_refused_before_the_run_folder(
        tasks: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", str(model), "--quiet", "--no-figures", "--out", str(tmp_path / "run")]
    refused(interference_main, [*args, "--data", str(tasks), "--perturb", "UF",
                                "--uf-sentences", "100"], capsys,
            ["UF", "sentences=100", "larger bank"], [tmp_path, tasks])
    no_options = copy_tree(tasks, tmp_path / "open")
    lines = [json.loads(line) for line in (no_options / "items.jsonl").read_text().splitlines()]
    for record in lines:
        for name in ("options", "format", "misleading_template"):
            record.pop(name, None)
    (no_options / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    refused(interference_main, [*args, "--data", str(no_options), "--perturb", "MD"], capsys,
            ["MD", "no wrong answer to name"], [tmp_path, tasks])
    # generated data: the refusal removes the folder it made
    refused(interference_main, [*args, "--groups", "1", "--perturb", "UF",
                                "--uf-sentences", "100"], capsys, "sentences=100",
            [tmp_path, tasks])


def test_finetune_refuses_a_late_answer_outside_the_vocabulary_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.finetune.__main__ import main as finetune_main

    data = tmp_path / "tasks"
    generate_color_tasks(data, groups=2, seed=0, variant="lowres", fmt="open")
    lines = (data / "items.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    last["answer"] = "zorblax"
    last.pop("options", None)
    (data / "items.jsonl").write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    refused(finetune_main, ["--model", "organism", "--data", str(data), "--out",
                            str(tmp_path / "run"), "--steps", "40", "--batch-size", "2",
                            "--threads", "1", "--quiet"], capsys,
            ["'zorblax'", "vocabulary"], [tmp_path])


def test_resume_refuses_changed_ri_photos(tasks: Path, model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, color in enumerate(("red", "blue")):
        Image.new("RGB", (16, 16), color).save(photos / f"p{i}.png")
    run = tmp_path / "run"
    args = ["--model", str(model), "--data", str(tasks), "--perturb", "RI", "--ri-folder",
            str(photos), "--bootstrap", "20", "--no-figures", "--quiet", "--out", str(run)]
    assert interference_main(args) == 0
    Image.new("RGB", (16, 16), "green").save(photos / "p1.png")  # same path, new photo
    refused(interference_main, [*args, "--resume"], capsys,
            ["--ri-folder images", "changed"], [run])


# ------------------------------------------------------------------ killed before the manifest
def test_a_start_killed_while_writing_its_manifest_can_be_rerun(
        tasks: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The states a SIGKILL can leave before the first manifest is in place: the atomic
    writer's temporary file alone (rerun works, --resume says to rerun), or with the data
    a run generates first (both say what to do)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".modprobe-tmp.manifest.json.k1ll3d.tmp").write_text('{"options": {"mo')
    args = ["--model", str(model), "--perturb", "MD", "--bootstrap", "20", "--no-figures",
            "--quiet", "--out", str(run)]
    refused(interference_main, [*args, "--data", str(tasks), "--resume"], capsys,
            ["killed before it started", "without --resume"], [tmp_path])
    assert interference_main([*args, "--data", str(tasks)]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"

    generated = tmp_path / "generated"
    generate_color_tasks(generated / "data", groups=1, seed=0, variant="lowres", fmt="choice")
    (generated / ".modprobe-tmp.manifest.json.k1ll3d.tmp").write_text("")
    for extra in ([], ["--resume"]):
        refused(interference_main, [*args[:-1], str(generated), "--groups", "1", *extra],
                capsys, ["killed before it started", f"rm -r {generated}"], [tmp_path])


def test_sabotage_refuses_an_item_id_that_is_not_unicode(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.sabotage import main as sabotage_main

    line = {"agent": "a", "labels": ["x"], "confidence": 0.5, "gold": "x"}
    (tmp_path / "agents.jsonl").write_text(
        json.dumps({"item": "q\ud800", **line}) + "\n" + json.dumps({"item": "q2", **line}) + "\n")
    refused(sabotage_main, [str(tmp_path / "agents.jsonl"), "--out", str(tmp_path / "r"),
                            "--no-figures"], capsys,
            ["agents.jsonl", "line 1, field 'item'", "lone surrogate"], [tmp_path])
