"""Held-out evaluation by construction: the group split of a fine-tuning run, its record,
and the interference runner's refusal to evaluate a tuned run on what it trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_input_helpers import raises_unchanged, refused

import modprobe
from modprobe.data.color_tasks import color_task_items, generate_color_tasks
from modprobe.data.split import HeldOutError, content_key, split_items
from modprobe.data.tasks import load_tasks
from modprobe.finetune import FinetuneDataError, TrainConfig, train
from modprobe.interference import main as interference_main


def _world(groups: int = 8, seed: int = 0) -> list:
    images, items = color_task_items(seed, groups, "lowres", "open")
    by_path = dict(images)
    return [it.replaced(image=by_path[it.image_file]) if it.image_file else it for it in items]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_holds_out_whole_clusters_and_no_content(seed: int) -> None:
    items = _world(8)
    split = split_items(items, 0.25, seed)
    train_clusters = {it.cluster for it in split.train}
    held = {it.cluster for it in split.eval} | {it.cluster for it in split.dropped}
    assert len(held) == 2 and not train_clusters & held
    assert not {content_key(it) for it in split.train} & {content_key(it) for it in split.eval}
    assert len(split.train) + len(split.eval) + len(split.dropped) == len(items)
    assert all(content_key(it) in {content_key(t) for t in split.train} for it in split.dropped)
    again = split_items(items, 0.25, seed)
    assert [it.id for it in again.eval] == [it.id for it in split.eval]
    assert split.record()["eval"]["fingerprint"] == again.record()["eval"]["fingerprint"]


def test_split_seeds_differ_and_one_cluster_is_refused() -> None:
    items = _world(8)
    draws = {tuple(sorted({it.cluster for it in split_items(items, 0.25, s).eval}))
             for s in range(6)}
    assert len(draws) > 1
    with pytest.raises(HeldOutError, match="--holdout 0"):
        split_items([it for it in items if it.cluster == items[0].cluster], 0.25, 0)


def test_content_key_ignores_ids_and_sees_pixels() -> None:
    items = _world(2)
    text = next(it for it in items if it.relevant == "text")
    assert content_key(text.replaced(id="other", cluster="x")) == content_key(text)
    assert content_key(text.replaced(context=text.context + " ")) != content_key(text)
    image = next(it for it in items if it.image is not None)
    flipped = image.replaced(image=image.image.transpose(0))
    assert content_key(flipped) != content_key(image)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step run on 4 groups of the organism's world, a quarter of the groups held out."""
    root = tmp_path_factory.mktemp("ft")
    data = root / "tasks"
    generate_color_tasks(data, groups=4, seed=0, variant="lowres", fmt="open")
    train(modprobe.load("organism", device="cpu"), str(data),
          TrainConfig(out=str(root / "run"), steps=1, batch_size=2, threads=1), progress=False)
    return root


def test_a_run_records_its_split_and_writes_its_held_out_items(tuned: Path) -> None:
    run = tuned / "run"
    record = json.loads((run / "split.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["split"]["eval"]["fingerprint"] == record["eval"]["fingerprint"]
    assert manifest["options"]["holdout"] == 0.25
    held = load_tasks(run / "eval")
    keys = {content_key(held.open(it)) for it in held.items}
    assert keys == set(record["eval"]["content_keys"]) and len(keys) == len(held.items)
    assert not keys & set(record["train"]["content_keys"])
    all_items = load_tasks(tuned / "tasks")
    trained = [it for it in all_items.items if it.cluster in record["train"]["clusters"]]
    assert {content_key(all_items.open(it)) for it in trained} == set(record["train"]["content_keys"])


def test_an_evaluation_set_sharing_training_items_is_refused(tuned: Path, tmp_path: Path) -> None:
    data = tuned / "tasks"
    out = tmp_path / "run"
    raises_unchanged(
        lambda: train(modprobe.load("organism", device="cpu"), str(data),
                      TrainConfig(out=str(out), steps=1, threads=1), eval_data=str(data),
                      progress=False),
        FinetuneDataError, "share their content with training items", [tmp_path, data])
    assert not out.exists()


def test_interference_on_a_tuned_run_uses_its_held_out_items_and_says_so(
        tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tuned / "run"
    out = tmp_path / "held"
    code = interference_main(["--model", str(run), "--out", str(out), "--perturb", "MD",
                              "--limit", "4", "--bootstrap", "20", "--no-figures", "--quiet",
                              "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["data"] == str(run / "eval")
    assert manifest["heldout"].startswith("held-out: none of the 4 evaluation items")
    assert "held-out: none of the 4" in printed


def test_interference_on_training_items_is_refused_unless_forced(
        tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tuned / "run"
    argv = ["--model", str(run), "--data", str(tuned / "tasks"), "--perturb", "MD",
            "--bootstrap", "20", "--no-figures", "--quiet", "--device", "cpu"]
    refused(interference_main, [*argv, "--out", str(tmp_path / "refused")], capsys,
            ["share their content", "--allow-train-overlap"], [tmp_path, tuned])
    forced = tmp_path / "forced"
    assert interference_main([*argv, "--out", str(forced), "--allow-train-overlap"]) == 0
    assert json.loads((forced / "manifest.json").read_text())["heldout"].startswith("WARNING")


def test_a_tuned_organism_gets_the_organisms_task_variant(tmp_path: Path) -> None:
    """No switch on the model's name: a tuned organism run (here without a hold-out)
    generates the organism's lowres open-answer tasks, and, as they are its training
    items, is refused unless forced."""
    run = tmp_path / "run"
    train(modprobe.load("organism", device="cpu"), None,
          TrainConfig(out=str(run), steps=1, batch_size=2, threads=1, holdout=0.0),
          progress=False)
    with pytest.raises(HeldOutError, match="records no training split"):
        from modprobe.study.interference import InterferenceConfig, run_interference

        run_interference(InterferenceConfig(model=str(run), data=None, out=str(tmp_path / "i"),
                                            perturb=["MD"], limit=4, n_bootstrap=20,
                                            figures=False, device="cpu"), progress=False)
    assert not (tmp_path / "i").exists()
    result = run_interference(InterferenceConfig(
        model=str(run), data=None, out=str(tmp_path / "forced"), perturb=["MD"], limit=4,
        n_bootstrap=20, figures=False, device="cpu", allow_train_overlap=True), progress=False)
    info = json.loads((result.out / "data" / "dataset.json").read_text())
    assert info["variant"] == "lowres"
    items = load_tasks(result.out / "data").items
    assert all(it.format == "open" for it in items)
