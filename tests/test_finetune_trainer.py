"""The fine-tuning trainer on the organism: LoRA scope, resume, loss decrease, bad input, loading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import modprobe
from modprobe.data.color_tasks import generate_color_tasks
from modprobe.data.tasks import TaskSet, load_tasks, write_tasks
from modprobe.finetune import (
    FinetuneDataError,
    FinetuneError,
    LoraSettings,
    LoraTargetError,
    LossConfig,
    TrainConfig,
    train,
)


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The color world's tasks, lowres, open answers (the organism's format): 2 groups."""
    root = tmp_path_factory.mktemp("tasks")
    generate_color_tasks(root, groups=2, seed=0, variant="lowres", fmt="open")
    if "context" not in modprobe.SPAN_NAMES:  # TEMPORARY until the context span lands
        loaded = load_tasks(root)
        write_tasks(root, [it for it in loaded.items if it.relevant == "image"], loaded.info)
    return root


@pytest.fixture(scope="module")
def tasks(tasks_dir: Path) -> TaskSet:
    return load_tasks(tasks_dir)


def _organism() -> modprobe.LoadedModel:
    return modprobe.load("organism", device="cpu")


def _config(out: Path, **kw: object) -> TrainConfig:
    options: dict[str, object] = {"steps": 4, "batch_size": 4, "learning_rate": 1e-2,
                                  "threads": 1, "checkpoint_every": 2}
    options.update(kw)
    return TrainConfig(out=str(out), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tasks: TaskSet, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, object, dict[str, torch.Tensor]]:
    """A short LoRA run: (run folder, trained model, the weights before training)."""
    lm = _organism()
    before = {k: v.detach().clone() for k, v in lm.module.state_dict().items()}
    out = tmp_path_factory.mktemp("ft") / "run"
    result = train(lm, tasks, _config(out, perturbations=("MD", "RP"),
                                      loss=LossConfig(calibration=1.0)), progress=False)
    return out, result.model, before


def test_lora_trains_only_the_language_models_q_and_v_adapters(
        trained: tuple[Path, object, dict[str, torch.Tensor]]) -> None:
    out, model, before = trained
    after = dict(model.module.named_parameters())
    lora = {k for k in after if "lora_" in k}
    assert lora and all(".language_model.layers." in k for k in lora)
    assert {k.split(".")[-4] for k in lora} == {"q_proj", "v_proj"}
    assert not any("vision_tower" in k or "multi_modal_projector" in k for k in lora)
    # every base weight (towers, projector, language model) is bit-identical
    base_names = {k.replace(".base_layer", ""): k for k in after if "lora_" not in k}
    assert set(base_names) == set(before)
    for name, current in base_names.items():
        assert torch.equal(after[current].detach(), before[name]), name
    assert all(not p.requires_grad for k, p in after.items() if "lora_" not in k)
    # the adapters did learn (lora_B starts at zero)
    assert any(after[k].abs().sum() > 0 for k in lora if "lora_B" in k)
    saved = load_file(str(out / "model" / "adapter_model.safetensors"))
    assert saved and all("lora_" in k and "vision_tower" not in k for k in saved)
    config = json.loads((out / "model" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "organism" and config["r"] == 8


def test_run_folder_log_manifest_and_checkpoints(
        trained: tuple[Path, object, dict[str, torch.Tensor]]) -> None:
    out, _, _ = trained
    log = pd.read_csv(out / "log.csv")
    assert list(log["step"]) == [1, 2, 3, 4]
    assert {"loss", "answer", "calibration", "lr", "seconds"} <= set(log.columns)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "finetune"
    assert manifest["options"]["base"] == "organism"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-0000002", "step-0000004"]


def test_load_run_feeds_capture_and_the_study(
        trained: tuple[Path, object, dict[str, torch.Tensor]], tasks: TaskSet,
        tmp_path: Path) -> None:
    from modprobe.capture import capture
    from modprobe.data import generate_colors
    from modprobe.study import StudyConfig, run_study

    out, model, _ = trained
    tuned = modprobe.load(out, device="cpu")
    assert type(tuned.module).__name__ == "LlavaForConditionalGeneration"
    assert not any("lora_" in k for k, _ in tuned.module.named_parameters())
    prompts = [tasks.open(it).prompt() for it in tasks.items[:4]]
    with torch.no_grad():
        merged = capture(tuned, prompts, lens=False).final_logits
        live = capture(model, prompts, lens=False).final_logits
    torch.testing.assert_close(merged, live, atol=1e-4, rtol=1e-4)
    base = capture(_organism(), prompts, lens=False).final_logits
    assert not torch.allclose(merged, base, atol=1e-4)  # the adapter changed the answers
    data = tmp_path / "data"
    generate_colors(data, groups=1, seed=1, variant="lowres")
    result = run_study(StudyConfig(model=str(out), data=str(data), out=str(tmp_path / "study"),
                                   limit=6, batch_size=3, n_bootstrap=20, figures=False),
                       progress=False)
    assert len(result.items) == 6
    from modprobe.study.interference import InterferenceConfig, run_interference

    inter = run_interference(InterferenceConfig(
        model=str(out), data=str(tasks.root), out=str(tmp_path / "interference"),
        perturb=["MD", "RP"], limit=4, n_bootstrap=20, figures=False), progress=False)
    assert set(inter.items["perturbation"]) == {"clean", "MD"}


def test_full_fine_tuning_trains_the_language_model(tasks: TaskSet, tmp_path: Path) -> None:
    lm = _organism()
    before = {k: v.detach().clone() for k, v in lm.module.state_dict().items()}
    train(lm, tasks, _config(tmp_path / "run", steps=1, mode="full", learning_rate=1e-3),
          progress=False)
    changed = {k for k, v in lm.module.state_dict().items() if not torch.equal(v, before[k])}
    assert any(".language_model.layers." in k for k in changed)
    tuned = modprobe.load(tmp_path / "run", device="cpu")
    for name, value in tuned.module.state_dict().items():
        torch.testing.assert_close(value, lm.module.state_dict()[name])


def _cli(out: Path, data: Path, steps: int) -> list[str]:
    return ["--model", "organism", "--data", str(data), "--out", str(out), "--steps", str(steps),
            "--batch-size", "4", "--lr", "1e-2", "--threads", "1", "--checkpoint-every", "2",
            "--perturb", "MD,RP", "--calibration", "1", "--quiet"]


def test_killed_run_resumes_to_the_same_weights(tasks_dir: Path, tmp_path: Path) -> None:
    from modprobe.finetune.__main__ import main

    steps = 12
    reference = tmp_path / "reference"
    assert main(_cli(reference, tasks_dir, steps)) == 0

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "modprobe.finetune", *_cli(out, tasks_dir, steps)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "step-0000004").exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.time() < deadline, "the run wrote no checkpoint in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no cleanup at all
    proc.wait()
    assert not (out / "model").exists(), "the run finished before it could be killed"

    assert main([*_cli(out, tasks_dir, steps), "--resume"]) == 0
    got = load_file(str(out / "model" / "adapter_model.safetensors"))
    want = load_file(str(reference / "model" / "adapter_model.safetensors"))
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    columns = ["step", "loss", "answer", "calibration"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "log.csv")[columns],
                                  pd.read_csv(reference / "log.csv")[columns])


def test_bad_input_fails_before_anything_is_written(tasks: TaskSet, tmp_path: Path) -> None:
    lm = _organism()
    out = tmp_path / "run"
    with pytest.raises(FinetuneError, match=r"calibration_layers: \[7\] out of range; the model "
                                            r"has 4 decoder layers \(0\.\.3"):
        train(lm, tasks, _config(out, loss=LossConfig(calibration=1.0, calibration_layers=[1, 7])))
    with pytest.raises(LoraTargetError, match="query.*linear layers are: .*q_proj.*v_proj"):
        train(lm, tasks, _config(out, lora=LoraSettings(targets=("query",))))
    with pytest.raises(FinetuneError, match="unknown perturbation 'XX'; known: UF, MD"):
        train(lm, tasks, _config(out, perturbations=("MD", "XX")))
    with pytest.raises(FinetuneError, match="consistency loss compares clean and perturbed"):
        train(lm, tasks, _config(out, loss=LossConfig(consistency=0.01)))
    with pytest.raises(FinetuneError, match="adversarial loss perturbs the irrelevant modality's "
                                            "tokens, but the clean prompts of the image-heavy"):
        train(lm, tasks, _config(out, perturbations=("MD", "RP"),
                                 loss=LossConfig(adversarial=1.0)))
    with pytest.raises(FinetuneError, match="calibration=1.0 with calibration_kind='cross_entropy' "
                                            "is identically 0: the clean prompts of the image-heavy"):
        train(lm, tasks, _config(out, loss=LossConfig(calibration=1.0)))
    imageless = tasks.open(tasks.items[0])
    imageless.image = None  # a list built by hand, changed after validation
    with pytest.raises(FinetuneDataError, match=f"item {imageless.id}: its relevant span "
                                                "'image' is absent"):
        train(lm, [imageless], _config(out, holdout=0.0))  # one item: nothing to hold out
    assert not out.exists()
    assert not any("lora_" in k for k, _ in lm.module.named_parameters())


def test_cli_bad_input_is_one_line_exit_2(tasks_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.finetune.__main__ import main

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "items.jsonl").write_text('{"id": "a", "question": "q?", "answer": "red"}\n')
    assert main(["--data", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "relevant" in err and "line 1" in err
    assert main(["--data", str(tasks_dir), "--out", str(tmp_path / "r"),
                 "--calibration-layers", "9", "--calibration", "1"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["--model", "lava", "--out", str(tmp_path / "r")]) == 2
    assert "unknown model alias 'lava'" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "r"), "--answer", "0"]) == 2  # a LossConfig check
    assert capsys.readouterr().err.startswith("error: every loss weight is 0")
    assert not (tmp_path / "r").exists()


def test_an_unfinished_run_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text(
        json.dumps({"kind": "finetune", "status": "running"}))
    with pytest.raises(modprobe.ModelNotFoundError, match="has not finished.*--resume"):
        modprobe.load(tmp_path / "run", device="cpu")


def _fixed_losses(lm: object, items: list, loss: LossConfig) -> dict[str, float]:
    """Every enabled term on one fixed micro-batch (same rows, perturbations, noise)."""
    from modprobe.finetune.data import micro_batch, perturbation_options
    from modprobe.finetune.step import compute_losses
    from modprobe.finetune.trainer import _train_batches

    batch = micro_batch(items, 8, seed=123, step=0, micro=0, process=0, perturbations=("RP",),
                        options=perturbation_options(lm))
    clean, perturbed = _train_batches(lm, batch, {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the adversarial random start
        terms = compute_losses(lm, clean, perturbed, loss)
    return {k: float(v.detach()) for k, v in terms.items()}


@pytest.mark.slow
@pytest.mark.parametrize("loss", [
    LossConfig(),
    LossConfig(answer=0.2, calibration=1.0, calibration_layers=[2, 3]),
    LossConfig(answer=0.2, consistency=1.0),
    LossConfig(answer=0.2, adversarial=1.0, adv_on_perturbed=True),
], ids=["answer", "calibration", "consistency", "adversarial"])
def test_a_short_run_lowers_each_loss_it_optimises(loss: LossConfig, tasks: TaskSet,
                                                   tmp_path: Path) -> None:
    # Text-heavy items under random pixels: the organism follows the added image, so
    # every term starts well above its floor.
    items = [tasks.open(it) for it in tasks.items if it.relevant == "text"]
    if not items:
        pytest.skip("needs the context span for text-heavy items")
    lm = _organism()
    before = _fixed_losses(lm, items, loss)
    result = train(lm, items, _config(tmp_path / "run", steps=12, batch_size=8,
                                      learning_rate=3e-3, perturbations=("RP",), loss=loss),
                   progress=False)
    after = _fixed_losses(result.model, items, loss)
    assert set(before) == {"loss", *loss.enabled()}
    for term in before:
        assert after[term] < before[term], (term, before[term], after[term])


class _TwoProcesses:
    """An accelerator stand-in: this process and one other whose gradients are given."""

    num_processes = 2

    def __init__(self, other: torch.Tensor) -> None:
        self.other = other
        self.calls = 0

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        assert reduction == "sum"
        self.calls += 1
        return tensor + self.other


def test_gradients_are_averaged_in_one_all_reduce_with_zeros_for_missing_ones() -> None:
    from modprobe.finetune.trainer import average_gradients

    a, b, c = (torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(3)),
               torch.nn.Parameter(torch.zeros(1)))
    a.grad = torch.ones(2, 2)  # b: this process's batch kind did not reach it; c: nobody's
    # the other process: grads 3 for a, 4 for b, none for c; then the has-grad flags
    other = torch.tensor([3.0] * 4 + [4.0] * 3 + [0.0] + [1.0, 1.0, 0.0])
    fake = _TwoProcesses(other)
    average_gradients(fake, [a, b, c])
    assert fake.calls == 1
    assert torch.equal(a.grad, torch.full((2, 2), 2.0))
    assert torch.equal(b.grad, torch.full((3,), 2.0))
    assert c.grad is None


def test_resume_against_changed_data_or_base_weights_is_refused(tasks_dir: Path,
                                                                 tmp_path: Path) -> None:
    import shutil

    from modprobe.study.runfolder import StudyError

    data = tmp_path / "data"
    shutil.copytree(tasks_dir, data)
    out = tmp_path / "run"
    train(_organism(), data, _config(out, steps=1), progress=False)
    assert set(read_manifest_of(out)["fingerprints"]) == {"data", "model"}
    changed = _organism()
    with torch.no_grad():
        next(changed.module.parameters()).add_(1.0)
    with pytest.raises(StudyError, match="the model changed since the run started"):
        train(changed, data, _config(out, steps=2, resume=True), progress=False)
    images = sorted(p for p in data.rglob("*.png"))
    shutil.copyfile(images[1], images[0])
    with pytest.raises(StudyError, match="the dataset .* changed since the run started"):
        train(_organism(), data, _config(out, steps=2, resume=True), progress=False)


def read_manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def test_finetune_errors_are_modprobe_errors() -> None:
    from modprobe.adapters.context import ContextLocationError
    from modprobe.errors import ModprobeError
    from modprobe.perturb import PerturbationError

    for error in (FinetuneError, FinetuneDataError, LoraTargetError, PerturbationError,
                  ContextLocationError):
        assert issubclass(error, ModprobeError) and issubclass(error, ValueError), error
