"""Bad input to every other command: data, testing, organism, following, bench, calibration.

Each refusal: exit 2, one line naming the option or file, nothing on disk changed; each
accepted oddity: valid handling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_input_helpers import break_image, copy_tree, first_image, refused, snapshot

from modprobe.data import generate_colors


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cmd-data") / "colors"
    generate_colors(root, groups=1, seed=5, variant="lowres", tiers=[0, 1], text_tiers=[0])
    return root


# ------------------------------------------------------------------ python -m modprobe.data
from modprobe.data.__main__ import main as data_main


@pytest.mark.parametrize(("extra", "names"), [
    (["--groups", "0"], "--groups"),
    (["--groups", "-3"], "--groups"),
    (["--groups", "1", "--tiers", "99"], "visual tiers"),
    (["--groups", "1", "--tiers", "a-b"], "bad tier"),
    (["--groups", "1", "--seed", "-1"], "--seed"),
    (["--groups", "1", "--kinds", "conflicts"], "--kinds"),
])
def test_data_colors_bad_options(extra: list[str], names: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    refused(data_main, ["colors", "--out", str(tmp_path / "d"), "--quiet", *extra], capsys,
            names, [tmp_path])


def test_data_colors_bad_out(data: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    args = ["colors", "--groups", "1", "--quiet", "--out"]
    refused(data_main, [*args, str(tmp_path / "file")], capsys, "is a file", [tmp_path])
    refused(data_main, [*args, "/sys/kernel/modprobe-data"], capsys, "cannot write",
            [tmp_path])
    existing = copy_tree(data, tmp_path / "existing")
    refused(data_main, [*args, str(existing)], capsys, ["already exists", "--overwrite"],
            [tmp_path])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    refused(data_main, [*args, str(tmp_path / "mine")], capsys, "--overwrite", [tmp_path])


def test_data_colors_overwrite_replaces_only_with_the_flag(data: Path, tmp_path: Path) -> None:
    existing = copy_tree(data, tmp_path / "existing")
    assert data_main(["colors", "--groups", "1", "--seed", "9", "--quiet", "--variant",
                      "lowres", "--out", str(existing), "--overwrite"]) == 0
    assert json.loads((existing / "dataset.json").read_text())["seed"] == 9


@pytest.mark.parametrize(("how", "names"), [
    ("empty", "empty file (0 bytes)"), ("truncated", "truncated"), ("garbage", "not an image"),
    ("bomb", "decompression bomb"), ("symlink", "symbolic link")])
def test_data_validate_checks_every_image(how: str, names: str, data: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy_tree(data, tmp_path / "data")
    break_image(first_image(broken), how, outside=tmp_path / "outside")
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert data_main(["validate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset") and names in err and "field 'image'" in err
    assert "Traceback" not in err and snapshot(tmp_path) == before


def test_data_validate_missing_folder_and_bad_json(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    refused(data_main, ["validate", str(tmp_path / "nope")], capsys, "items.jsonl",
            [tmp_path])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "items.jsonl").write_text('{"id": "a",\n')
    capsys.readouterr()
    assert data_main(["validate", str(tmp_path / "bad")]) == 2
    assert "line 1" in capsys.readouterr().err


def test_data_tasks_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(data_main, ["tasks", "--out", str(tmp_path / "t"), "--groups", "0"], capsys,
            "--groups", [tmp_path])
    (tmp_path / "file").write_text("x")
    refused(data_main, ["tasks", "--out", str(tmp_path / "file"), "--groups", "1"], capsys,
            "is a file", [tmp_path])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "items.jsonl").write_text("mine\n")
    refused(data_main, ["tasks", "--out", str(tmp_path / "full"), "--groups", "1"], capsys,
            "--overwrite", [tmp_path])
    refused(data_main, ["validate-tasks", str(tmp_path / "nope")], capsys, "items.jsonl",
            [tmp_path])


def test_symlink_inside_the_folder_is_fine(data: Path, tmp_path: Path) -> None:
    from modprobe.data import load_dataset

    copy = copy_tree(data, tmp_path / "data")
    image = first_image(copy)
    (copy / "images" / "real.png").write_bytes(image.read_bytes())
    image.unlink()
    image.symlink_to(copy / "images" / "real.png")
    assert len(load_dataset(copy)) == len(load_dataset(data))


# ------------------------------------------------------------------ python -m modprobe.testing
from modprobe.testing.__main__ import main as tiny_main


def test_testing_tiny_refusals(tiny_dir: Callable[..., Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    model = copy_tree(tiny_dir("llava"), tmp_path / "model")
    refused(tiny_main, ["tiny", "llava", "--out", str(model)], capsys,
            ["already exists", "--overwrite"], [tmp_path])
    (tmp_path / "file").write_text("x")
    refused(tiny_main, ["tiny", "llava", "--out", str(tmp_path / "file")], capsys,
            "is a file", [tmp_path])
    refused(tiny_main, ["tiny", "llava", "--out", str(tmp_path / "new"), "--layers", "0"],
            capsys, "--layers", [tmp_path])
    refused(tiny_main, ["tiny", "gpt2", "--out", str(tmp_path / "new")], capsys,
            "invalid choice: 'gpt2'", [tmp_path])
    refused(tiny_main, ["tiny", "llava", "--out", "/sys/kernel/modprobe-tiny"], capsys,
            "cannot write", [tmp_path])


def test_testing_tiny_overwrite_and_readable_files(tiny_dir: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    model = copy_tree(tiny_dir("llava"), tmp_path / "model")
    assert tiny_main(["tiny", "llava", "--out", str(model), "--seed", "1",
                         "--overwrite"]) == 0
    assert (model / "model.safetensors").read_bytes() != (
        tiny_dir("llava") / "model.safetensors").read_bytes()
    assert (model / "model.safetensors").stat().st_mode & 0o044 == 0o044  # not 0600


# ------------------------------------------------------------------ python -m modprobe.organism
from modprobe.organism.__main__ import main as organism_main


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal must come before training: training here fails the test."""
    from modprobe.organism import train as train_module

    def train(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(train_module, "train", train)


@pytest.mark.parametrize(("extra", "names"), [
    (["--steps", "-5"], "--steps"), (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"), (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"), (["--threads", "0"], "--threads"),
    (["--eval-every", "0"], "--eval-every"), (["--probe-items", "0"], "--probe-items"),
])
def test_organism_bad_options(extra: list[str], names: str, tmp_path: Path, no_training: None,
                              capsys: pytest.CaptureFixture[str]) -> None:
    refused(organism_main, ["train", "--out", str(tmp_path / "o"), *extra], capsys, names,
            [tmp_path])


def test_organism_out_checked_before_training(tmp_path: Path, no_training: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    refused(organism_main, ["train", "--out", str(tmp_path / "file")], capsys, "is a file",
            [tmp_path])
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"trained for a week")
    refused(organism_main, ["train", "--out", str(tmp_path / "model")], capsys,
            ["already exists", "--overwrite"], [tmp_path])


def test_organism_config_api_refuses_nonsense() -> None:
    from modprobe.errors import ModprobeError
    from modprobe.organism.config import OrganismConfig

    for bad in ({"steps": -5}, {"batch_size": 0}, {"learning_rate": 0.0}, {"threads": 0}):
        with pytest.raises(ModprobeError, match=next(iter(bad))):
            OrganismConfig(**bad)


# ------------------------------------------------------------------ python -m modprobe.following
from modprobe.following import main as following_main


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = 30
    x = np.linspace(-1, 1, n)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "h_text": np.exp(x), "h_vision": np.exp(-x), "y_text": ["red"] * n,
        "y_vision": ["blue"] * n,
        "y_multi": ["red" if rng.random() < 1 / (1 + np.exp(3 * v)) else "blue" for v in x],
        "cluster": ["0001", "1", "01"] * (n // 3)})
    path = tmp_path_factory.mktemp("table") / "predictions.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("extra", "names"), [
    (["--bootstrap", "0"], "--bootstrap"), (["--confidence", "1.5"], "--confidence"),
    (["--confidence", "0"], "--confidence"), (["--entropy-floor", "-1"], "--entropy-floor"),
    (["--seed", "-2"], "--seed"), (["--axis", "log"], "--axis"),
    (["--cluster", "nope"], "'nope'"),
])
def test_following_bad_options(extra: list[str], names: str, table: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    refused(following_main, [str(table), "--out", str(tmp_path / "f"), *extra], capsys, names,
            [tmp_path, table])


def test_following_bad_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(following_main, [str(tmp_path / "missing.csv")], capsys, "missing.csv", [tmp_path])
    (tmp_path / "cols.csv").write_text("h_text,h_vision\n1,2\n")
    refused(following_main, [str(tmp_path / "cols.csv")], capsys, "y_text", [tmp_path])
    (tmp_path / "neg.csv").write_text("h_text,h_vision,y_text,y_vision,y_multi\n-1,2,a,b,a\n")
    refused(following_main, [str(tmp_path / "neg.csv")], capsys, "h_text", [tmp_path])
    (tmp_path / "t.xlsx").write_text("x")
    refused(following_main, [str(tmp_path / "t.xlsx")], capsys, ".xlsx", [tmp_path])


def test_following_out_folder(table: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    refused(following_main, [str(table), "--out", str(tmp_path / "file")], capsys,
            "is a file", [tmp_path])
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "summary.txt").write_text("my notes")
    refused(following_main, [str(table), "--out", str(tmp_path / "figs"), "--bootstrap", "20"],
            capsys, ["already exists", "--overwrite"], [tmp_path])
    assert following_main([str(table), "--out", str(tmp_path / "figs"), "--bootstrap", "20",
                           "--overwrite"]) == 0
    assert (tmp_path / "figs" / "summary.txt").read_text().startswith("model=")


def test_following_string_cluster_labels_stay_distinct(table: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert following_main([str(table), "--cluster", "cluster", "--bootstrap", "20"]) == 0
    assert "3 clusters" in capsys.readouterr().out  # "0001", "1" and "01", not 1 and 1


def test_following_unidentified_law_says_why(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    n = 20
    flat = pd.DataFrame({"h_text": [1.0] * n, "h_vision": [1.0] * n, "y_text": ["a"] * n,
                         "y_vision": ["b"] * n, "y_multi": ["a", "b"] * (n // 2)})
    flat.to_csv(tmp_path / "flat.csv", index=False)
    assert following_main([str(tmp_path / "flat.csv"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "slope not identified (one distinct x" in out
    assert "balance_point=none (not identified: every item has the same x" in out
    assert "ci=[0.000, 0.000]" not in out
    x = np.linspace(-1, 1, 8)
    separated = pd.DataFrame({"h_text": np.exp(x), "h_vision": np.exp(-x), "y_text": ["a"] * 8,
                              "y_vision": ["b"] * 8, "y_multi": ["a"] * 4 + ["b"] * 4})
    separated.to_csv(tmp_path / "sep.csv", index=False)
    assert following_main([str(tmp_path / "sep.csv"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "slope not identified (x separates" in out and "nan" not in out


# ------------------------------------------------------------------ bench and calibration
from modprobe.bench.__main__ import main as bench_main
from modprobe.commands.calibration import main as calibration_main


@pytest.mark.parametrize(("extra", "names"), [
    (["--device", "gpu"], "--device"), (["--tokens", "0"], "--tokens"),
    (["--repeats", "-1"], "--repeats"), (["--variants", "bogus"], "bogus"),
    (["--mem-limit-gb", "0"], "--mem-limit-gb"),
])
def test_bench_bad_options(extra: list[str], names: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    refused(bench_main, ["capture", "--inline", *extra], capsys, names, [tmp_path])


@pytest.mark.parametrize(("extra", "names"), [
    (["--datasets", "0"], "--datasets"), (["--bootstrap", "0"], "--bootstrap"),
    (["--items", "-1"], "--items"), (["--unit", "cluster"], "--clusters"),
])
def test_calibration_bad_options(extra: list[str], names: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    refused(calibration_main, extra, capsys, names, [tmp_path])
