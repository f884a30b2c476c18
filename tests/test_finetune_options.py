"""Every trainer option is checked before anything is written: exit 2, one line naming the
option, no run folder, nothing on disk changed (the byte-and-mode snapshot of the bad-input
battery)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_helpers import raises_unchanged, refused

import modprobe
from modprobe.data.color_tasks import generate_color_tasks
from modprobe.finetune import FinetuneError, LoraSettings, LossConfig, TrainConfig, train
from modprobe.finetune.__main__ import main as finetune_main


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    generate_color_tasks(root, groups=2, seed=0, variant="lowres", fmt="open")
    return root


@pytest.fixture
def model(tiny_dir: Callable[..., Path]) -> Path:
    return tiny_dir("llava")


@pytest.mark.parametrize(("extra", "names"), [
    (["--grad-clip", "-1"], "--grad-clip"), (["--grad-clip", "nan"], "--grad-clip"),
    (["--grad-clip", "inf"], "--grad-clip"),
    (["--weight-decay", "-1"], "--weight-decay"), (["--weight-decay", "nan"], "--weight-decay"),
    (["--lora-alpha", "0"], "--lora-alpha"), (["--lora-alpha", "-16"], "--lora-alpha"),
    (["--lora-dropout", "1.5"], "--lora-dropout"), (["--lora-dropout", "1"], "--lora-dropout"),
    (["--lora-dropout", "-0.1"], "--lora-dropout"), (["--lora-dropout", "nan"], "--lora-dropout"),
    (["--lr", "nan"], "--lr"), (["--lr", "-1e-4"], "--lr"), (["--steps", "0"], "--steps"),
    (["--lora-rank", "0"], "--lora-rank"), (["--warmup", "-1"], "--warmup"),
    (["--temperature", "0"], "--temperature"), (["--calibration", "inf"], "--calibration"),
    (["--answer", "nan"], "--answer"), (["--adv-eps", "0"], "--adv-eps"),
    (["--adv-eps", "inf"], "--adv-eps"), (["--adv-steps", "-1"], "--adv-steps"),
    (["--adv-step-size", "nan"], "--adv-step-size"),
])
def test_cli_refuses_each_bad_option_before_writing(
        extra: list[str], names: str, model: Path, tasks_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    refused(finetune_main, ["--model", str(model), "--data", str(tasks_dir), "--out", str(out),
                            "--quiet", "--steps", "1", "--threads", "1", *extra],
            capsys, names, [tmp_path, tasks_dir, model])
    assert not out.exists()


@pytest.mark.parametrize(("options", "match"), [
    ({"grad_clip": -1.0}, "grad_clip"), ({"grad_clip": float("nan")}, "grad_clip"),
    ({"grad_clip": 0.0}, "grad_clip"), ({"weight_decay": -1.0}, "weight_decay"),
    ({"learning_rate": float("inf")}, "learning_rate"), ({"steps": 0}, "steps"),
    ({"batch_size": 2.5}, "batch_size"), ({"threads": 0}, "threads"),
    ({"lora": LoraSettings(alpha=0.0)}, "alpha"), ({"lora": LoraSettings(alpha=-16.0)}, "alpha"),
    ({"lora": LoraSettings(dropout=1.5)}, "dropout"), ({"lora": LoraSettings(rank=0)}, "rank"),
    ({"lora": LoraSettings(targets=())}, "targets"),
])
def test_api_refuses_each_bad_option_before_writing(options: dict[str, object], match: str,
                                                    tasks_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = TrainConfig(out=str(out), **{"threads": 1, **options})  # type: ignore[arg-type]
    loaded = modprobe.load("organism", device="cpu")
    raises_unchanged(lambda: train(loaded, str(tasks_dir), config, progress=False),
                     FinetuneError, match, [tmp_path, tasks_dir])
    assert not out.exists()


def test_resume_with_fewer_steps_than_done_is_refused_and_names_the_fix(
        tasks_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    loaded = modprobe.load("organism", device="cpu")
    base = {"out": str(out), "batch_size": 2, "threads": 1, "checkpoint_every": 1,
            "learning_rate": 1e-3}
    train(loaded, str(tasks_dir), TrainConfig(steps=3, **base), progress=False)
    again = modprobe.load("organism", device="cpu")
    error = raises_unchanged(
        lambda: train(again, str(tasks_dir), TrainConfig(steps=2, resume=True, **base),
                      progress=False),
        FinetuneError, "already holds 3 trained steps", [tmp_path, tasks_dir])
    assert "--steps 3" in str(error)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["steps_done"] == 3 and manifest["options"]["steps"] == 3


def test_a_run_that_fails_before_its_first_step_leaves_no_folder(
        tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fails after the folder was made but before a step finished (here the LoRA
    injection) takes the folder with it, so a rerun is not refused as 'already exists'."""
    from modprobe.finetune import trainer

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("adapter injection failed")

    monkeypatch.setattr(trainer, "apply_lora", broken)
    out = tmp_path / "run"
    loaded = modprobe.load("organism", device="cpu")
    with pytest.raises(RuntimeError, match="adapter injection"):
        train(loaded, str(tasks_dir), TrainConfig(out=str(out), steps=1, threads=1),
              progress=False)
    assert not out.exists()
    monkeypatch.undo()
    train(modprobe.load("organism", device="cpu"), str(tasks_dir),
          TrainConfig(out=str(out), steps=1, batch_size=2, threads=1), progress=False)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_loss_options_refuse_non_finite_weights() -> None:
    with pytest.raises(ValueError, match="--calibration"):
        LossConfig(calibration=float("inf"))
    with pytest.raises(ValueError, match="--adv-eps"):
        LossConfig(adversarial=1.0, adv_eps=float("inf"))
