"""Bad input to the Python API: prompts, loading, candidates, datasets, files, run folders."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from bad_input_helpers import raises_unchanged
from PIL import Image

import modprobe
from modprobe import AdapterError, ModprobeError, Prompt
from modprobe.capture import CandidateError, resolve_candidates


# ------------------------------------------------------------------ Prompt
def test_prompt_without_a_question() -> None:
    img = Image.new("RGB", (8, 8))
    with pytest.raises(AdapterError, match="needs a question.*got None"):
        Prompt(None)  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match="needs a question.*got nothing"):
        Prompt(images=img)  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match="needs a question"):
        Prompt("   ")


def test_prompt_images_and_context() -> None:
    img = Image.new("RGB", (8, 8))
    assert Prompt("q?", images=[img]).images == [img]
    assert Prompt("q?", images=(img,)).images == [img]
    with pytest.raises(AdapterError, match=r"images\[0\] is a str.*PIL.Image.open"):
        Prompt("q?", images=["cat.png"])  # type: ignore[list-item]
    with pytest.raises(AdapterError, match="context must be a string"):
        Prompt("q?", context=3)  # type: ignore[arg-type]


# ------------------------------------------------------------------ load
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"device": "gpu"}, "'gpu' is not a device"),
    ({"dtype": "float8"}, "'float8' is not a dtype"),
    ({"device": "tpu"}, "modprobe runs on cpu, cuda or mps|is not a device"),
])
def test_load_bad_device_and_dtype(kwargs: dict[str, str], match: str,
                                   tiny_dir: Callable[..., Path]) -> None:
    raises_unchanged(lambda: modprobe.load(tiny_dir("llava"), **kwargs), ModprobeError, match,
                     [tiny_dir("llava")])


def test_load_damaged_weights(tiny_dir: Callable[..., Path], tmp_path: Path) -> None:
    import shutil

    model = Path(shutil.copytree(tiny_dir("llava"), tmp_path / "m"))
    os.truncate(model / "model.safetensors", 100)
    raises_unchanged(lambda: modprobe.load(model, device="cpu"), modprobe.ModelLoadError,
                     "truncated or corrupt", [model])


def test_load_config_is_garbage(tiny_dir: Callable[..., Path], tmp_path: Path) -> None:
    import shutil

    model = Path(shutil.copytree(tiny_dir("llava"), tmp_path / "m"))
    (model / "config.json").write_text("{not json")
    with pytest.raises(ModprobeError):
        modprobe.load(model, device="cpu")


# ------------------------------------------------------------------ candidates
def test_unknown_candidate_is_refused(tiny_model: Callable[..., object]) -> None:
    lm = tiny_model("llava")
    vocab = lm.module.get_output_embeddings().weight.shape[0]  # type: ignore[attr-defined]
    with pytest.raises(CandidateError, match="'zzzq' is not in the tokenizer's vocabulary"):
        resolve_candidates(["red", "zzzq"], lm.tokenizer, vocab)  # type: ignore[attr-defined]
    unk = lm.tokenizer.unk_token  # type: ignore[attr-defined]
    # the unknown token itself, asked for explicitly, is allowed
    assert resolve_candidates([unk], lm.tokenizer, vocab).tokens  # type: ignore[attr-defined]
    with pytest.raises(CandidateError, match="outside the vocabulary"):
        resolve_candidates([vocab + 5], lm.tokenizer, vocab)  # type: ignore[attr-defined]


def test_capture_with_unknown_candidate(tiny_model: Callable[..., object]) -> None:
    from modprobe.capture import capture

    lm = tiny_model("llava")
    prompt = Prompt("What color is the circle?", images=[Image.new("RGB", (32, 32), "red")])
    with pytest.raises(CandidateError, match="unknown token"):
        capture(lm, [prompt], candidates=["red", "zzzq"])


# ------------------------------------------------------------------ files
def test_write_json_is_valid_json() -> None:
    import tempfile

    from modprobe.io import write_json

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.json"
        write_json(path, {"a": math.nan, "b": [np.float32("inf"), 1.5], "c": np.int64(2),
                          "d": (np.nan,), "e": np.array([1.0, np.nan])})
        loaded = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c))
        assert loaded == {"a": None, "b": [None, 1.5], "c": 2, "d": [None], "e": [1.0, None]}


def test_files_follow_the_umask(tmp_path: Path) -> None:
    from modprobe.io import write_bytes

    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    write_bytes(tmp_path / "b.bin", b"x")
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~old


def test_read_csv_keeps_string_ids(tmp_path: Path) -> None:
    from modprobe.io import read_csv, write_csv

    write_csv(tmp_path / "t.csv", pd.DataFrame({"id": ["0001", "1", "NA", ""], "x": [1, 2, 3, 4]}))
    frame = read_csv(tmp_path / "t.csv", text=["id"])
    assert frame["id"].tolist()[:3] == ["0001", "1", "NA"] and pd.isna(frame["id"].iloc[3])


def test_temporary_files_are_removed(tmp_path: Path) -> None:
    from modprobe.io import remove_temporary_files

    (tmp_path / "sub").mkdir()
    stray = tmp_path / "sub" / ".modprobe-tmp.items.csv.x1.tmp"
    stray.write_text("half")
    (tmp_path / "sub" / "keep.tmp").write_text("user file")
    assert remove_temporary_files(tmp_path) == [stray]
    assert (tmp_path / "sub" / "keep.tmp").exists()


# ------------------------------------------------------------------ datasets and run folders
def test_load_dataset_on_a_file_and_bad_utf8(tmp_path: Path) -> None:
    from modprobe.data import DatasetError, load_dataset

    (tmp_path / "f").write_text("x")
    raises_unchanged(lambda: load_dataset(tmp_path / "f"), DatasetError, "items.jsonl",
                     [tmp_path])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "items.jsonl").write_bytes(b"\xff\xfe\x00bad")
    raises_unchanged(lambda: load_dataset(tmp_path / "d"), DatasetError, "not UTF-8",
                     [tmp_path])


def test_run_folder_checks_write_nothing(tmp_path: Path) -> None:
    from modprobe.study.runfolder import StudyError, check_run_folder, prepare_run_folder

    assert check_run_folder(tmp_path / "new", resume=False) is None
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    raises_unchanged(lambda: prepare_run_folder(tmp_path / "file", {}, False, ()),
                     StudyError, "is a file", [tmp_path])
    run = tmp_path / "run"
    prepare_run_folder(run, {"a": 1}, False, ("a",), kind="following",
                       fingerprints={"data": {"items": "x", "images": "y"}})
    raises_unchanged(lambda: prepare_run_folder(run, {"a": 2}, True, ("a",), kind="following"),
                     StudyError, "a: 1 -> 2", [tmp_path])
    raises_unchanged(lambda: prepare_run_folder(run, {"a": 1}, True, ("a",), kind="interference"),
                     StudyError, "not a interference run|holds a following run", [tmp_path])
    raises_unchanged(lambda: prepare_run_folder(
        run, {"a": 1}, True, ("a",), kind="following",
        fingerprints={"data": {"items": "CHANGED", "images": "y"}}),
        StudyError, r"dataset .* changed since the run started \(items differ\)", [tmp_path])


def test_model_fingerprint_sees_weights_and_config(tiny_model: Callable[..., object]) -> None:
    from modprobe.study.runfolder import model_fingerprint

    module = tiny_model("llava").module  # type: ignore[attr-defined]
    before = model_fingerprint(module)
    assert before == model_fingerprint(module)
    other = tiny_model("llava", seed=1).module  # type: ignore[attr-defined]
    after = model_fingerprint(other)
    assert after["weights"] != before["weights"] and after["config"] == before["config"]
    with torch.no_grad():
        weight = module.lm_head.weight
        saved = weight[0, 0].item()
        weight[0, 0] += 1.0  # one element: the first sample of the tensor
        try:
            assert model_fingerprint(module)["weights"] != before["weights"]
        finally:
            weight[0, 0] = saved


# ------------------------------------------------------------------ analyses that cannot identify
def test_one_cluster_oscillation_is_not_a_zero_width_cluster_bootstrap() -> None:
    from modprobe.analysis import oscillation_report

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=30)
    report = oscillation_report(counts, rng.normal(size=30), None, groups=["conflict"] * 30,
                                n_bootstrap=200, seed=0, clusters=["g0"] * 30)
    assert report.n_clusters is None and "1 cluster" in (report.note or "")
    row = report.by_group.iloc[0]
    assert row["ci_high"] > row["ci_low"]  # items resampled: a real interval


def test_law_on_one_outcome_says_why() -> None:
    from modprobe.analysis.following.law import fit_law

    x = np.linspace(-1, 1, 20)
    law = fit_law(x, np.zeros(20, dtype=bool), n_bootstrap=50)
    assert "every item follows the vision" in law.monotonicity.summary()
    assert not law.balance_point.crosses and law.balance_point.direction == "vision"
    same = fit_law(np.zeros(20), np.arange(20) % 2 == 0, n_bootstrap=50)
    assert "one distinct x" in same.monotonicity.summary()
    assert same.balance_point.reason.startswith("not identified")
    assert json.dumps(same.balance_point.to_dict(), allow_nan=False)


def test_a_finished_run_keeps_no_second_copy_and_still_resumes(tmp_path: Path) -> None:
    from modprobe.study.runfolder import (
        chunk_folder,
        finished_chunks,
        gather_chunks,
        mark_complete,
        prepare_run_folder,
        write_chunk,
    )

    run = tmp_path / "run"
    manifest = prepare_run_folder(run, {"a": 1}, False, ("a",), kind="demo")
    for index in range(2):
        write_chunk(chunk_folder(run, index), {"items.csv": pd.DataFrame({"id": [f"00{index}"]}),
                                               "mass.npy": np.full((1, 2), index, np.float32)})
    first = gather_chunks(run, 2, ["items.csv", "mass.npy"])
    mark_complete(run, manifest, remove_chunks=True)
    assert not (run / "chunks").exists()
    assert finished_chunks(run, 2) == {0, 1}  # nothing to recompute on a resume
    again = gather_chunks(run, 2, ["items.csv", "mass.npy"])
    assert again["items.csv"]["id"].tolist() == ["000", "001"] == first["items.csv"]["id"].tolist()
    np.testing.assert_array_equal(again["mass.npy"], first["mass.npy"])
