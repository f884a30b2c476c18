"""Bad input to the interference, fine-tuning and sabotage commands: exit 2, one line
naming the option or file, nothing on disk changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_helpers import refused

from modprobe.finetune.__main__ import main as finetune_main
from modprobe.interference import main as interference_main
from modprobe.sabotage import main as sabotage_main


@pytest.fixture
def model(tiny_dir: Callable[..., Path]) -> Path:
    return tiny_dir("llava")


@pytest.mark.parametrize(("extra", "names"), [
    (["--bootstrap", "0"], "--bootstrap"), (["--top-k", "0"], "--top-k"),
    (["--groups", "0"], "--groups"), (["--batch-size", "0"], "--batch-size"),
    (["--limit", "-1"], "--limit"), (["--dtype", "float8"], "--dtype"),
    (["--device", "gpu"], "--device"), (["--seed", "-1"], "--seed"),
])
def test_interference_bad_options(extra: list[str], names: str, model: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    refused(interference_main, ["--model", str(model), "--out", str(tmp_path / "run"),
                                "--quiet", *extra], capsys, names, [tmp_path, model])


def test_interference_bad_out_and_table(model: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    refused(interference_main, ["--model", str(model), "--out", str(tmp_path / "file")],
            capsys, "is a file", [tmp_path])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.txt").write_text("keep")
    refused(interference_main, ["--model", str(model), "--out", str(tmp_path / "full")],
            capsys, "already exists", [tmp_path])
    refused(interference_main, [str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")],
            capsys, "missing.csv", [tmp_path])


@pytest.mark.parametrize(("extra", "names"), [
    (["--steps", "-5"], "--steps"), (["--lr", "0"], "--lr"),
    (["--batch-size", "0"], "--batch-size"), (["--device", "gpu"], "--device"),
    (["--lora-rank", "0"], "--lora-rank"), (["--grad-accum", "0"], "--grad-accum"),
])
def test_finetune_bad_options(extra: list[str], names: str, model: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    refused(finetune_main, ["--model", str(model), "--out", str(tmp_path / "run"), "--quiet",
                            *extra], capsys, names, [tmp_path, model])


def test_finetune_bad_out(model: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    refused(finetune_main, ["--model", str(model), "--out", str(tmp_path / "file")], capsys,
            "is a file", [tmp_path])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "adapter.safetensors").write_text("a week of training")
    refused(finetune_main, ["--model", str(model), "--out", str(tmp_path / "full")], capsys,
            "already exists", [tmp_path])


@pytest.mark.parametrize(("extra", "names"), [
    (["--bootstrap", "0"], "--bootstrap"), (["--bins", "0"], "--bins"),
    (["--tau", "2"], "--tau"), (["--seed", "-1"], "--seed"),
])
def test_sabotage_bad_options(extra: list[str], names: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "agents.jsonl").write_text("{}\n")
    refused(sabotage_main, [str(tmp_path / "agents.jsonl"), "--out", str(tmp_path / "r"),
                            *extra], capsys, names, [tmp_path])


def test_sabotage_bad_source_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(sabotage_main, [str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r")],
            capsys, "nope.jsonl", [tmp_path])
    (tmp_path / "agents.jsonl").write_text('{"id": 1}\n')
    refused(sabotage_main, [str(tmp_path / "agents.jsonl"), "--out", str(tmp_path / "r")],
            capsys, "line 1", [tmp_path])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    refused(sabotage_main, [str(tmp_path / "agents.jsonl"), "--out", str(tmp_path / "full")],
            capsys, "already exists", [tmp_path])


@pytest.mark.parametrize(("extra", "names"), [
    (["--steps", "0"], "--steps"), (["--lr", "0"], "--lr"), (["--bootstrap", "0"], "--bootstrap"),
    (["--train-groups", "-1"], "--train-groups"),
])
def test_finetune_demo_bad_options(extra: list[str], names: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.commands.finetune_demo import main as demo_main

    refused(demo_main, ["--out", str(tmp_path / "demo"), *extra], capsys, names, [tmp_path])
