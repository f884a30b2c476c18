"""Bad input to ``python -m modprobe.layers`` and the study runner (issue: never crash, lie
or destroy). Every refusal: exit 2, one line naming the option or file, nothing on disk
changed. Every accepted oddity: valid handling, checked on the files."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from bad_input_helpers import break_image, copy_tree, first_image, refused, snapshot

from modprobe.data import DatasetError, generate_colors
from modprobe.layers import main
from modprobe.study import StudyConfig, StudyError, run_study
from modprobe.study.runfolder import read_table, table_path

FAST = ["--bootstrap", "20", "--no-figures", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-data") / "colors"
    generate_colors(root, groups=1, seed=3, variant="lowres")
    return root


@pytest.fixture(scope="module")
def model(tiny_dir: Callable[..., Path]) -> Path:
    return tiny_dir("llava")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, model: Path, data: Path) -> Path:
    """A finished 4-item run (two chunks), shared read-only by the refusal cases."""
    out = tmp_path_factory.mktemp("bad-run") / "run"
    assert main(["--model", str(model), "--data", str(data), "--out", str(out), "--limit", "4",
                 "--batch-size", "2", *FAST]) == 0
    return out


def _args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--data", str(data), "--out", str(out), "--limit", "4",
            "--batch-size", "2", *FAST, *extra]


# ------------------------------------------------------------------ options
@pytest.mark.parametrize(("extra", "names"), [
    (["--groups", "0"], "--groups"),
    (["--bootstrap", "0"], "--bootstrap"),
    (["--top-k", "0"], "--top-k"),
    (["--batch-size", "0"], "--batch-size"),
    (["--limit", "0"], "--limit"),
    (["--seed", "-1"], "--seed"),
    (["--entropy-floor", "-1"], "--entropy-floor"),
    (["--dtype", "float8"], "--dtype"),
    (["--axis", "log"], "--axis"),
    (["--groups", "2"], "--groups"),  # with --data: the dataset is not generated
    (["--device", "gpu"], "--device"),
    (["--candidates", "red,red"], "twice"),
    (["--candidates", " , "], "--candidates"),
])
def test_bad_options_are_refused_before_any_write(extra: list[str], names: str, model: Path,
                                                  data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    refused(main, _args(model, data, out, *extra), capsys, names, [tmp_path, data, model])
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_gpu(model: Path, data: Path, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    refused(main, _args(model, data, tmp_path / "run", "--device", "cuda:1"), capsys,
            ["--device cuda:1", "no CUDA GPU", "--device cpu"], [tmp_path])


# ------------------------------------------------------------------ the model
def test_unknown_alias_and_missing_folder(data: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    refused(main, _args(Path("lava"), data, tmp_path / "r"), capsys, "'lava'", [tmp_path])
    refused(main, _args(tmp_path / "nope" / "model", data, tmp_path / "r"), capsys,
            "does not exist", [tmp_path])
    (tmp_path / "empty_model").mkdir()
    refused(main, _args(tmp_path / "empty_model", data, tmp_path / "r"), capsys,
            "config.json", [tmp_path])


def _damaged_model(model: Path, target: Path, how: str) -> Path:
    copy = copy_tree(model, target)
    weights = copy / "model.safetensors"
    if how == "truncated":
        os.truncate(weights, weights.stat().st_size // 2)
    elif how == "empty":
        weights.write_bytes(b"")
    else:  # a pickle checkpoint holding an object, not only tensors
        from safetensors.torch import load_file

        state = load_file(weights)
        state["payload"] = _Payload()
        torch.save(state, copy / "pytorch_model.bin")
        weights.unlink()
    return copy


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


@pytest.mark.parametrize(("how", "names"), [
    ("truncated", "truncated or corrupt"), ("empty", "truncated or corrupt"),
    ("pickle", "pickle checkpoint")])
def test_damaged_weights_are_one_line(how: str, names: str, model: Path, data: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = _damaged_model(model, tmp_path / "model", how)
    refused(main, _args(damaged, data, tmp_path / "run"), capsys, [names, str(damaged)],
            [tmp_path])
    assert not (tmp_path / "run").exists()


def test_unknown_candidate_is_not_read_as_unk(model: Path, data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(main, _args(model, data, tmp_path / "run", "--candidates",
                               "red,chartreusey"), capsys,
                   ["'chartreusey'", "not in the tokenizer's vocabulary"], [tmp_path, data])
    assert "<unk>" in line or "unknown token" in line
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the output folder
def test_out_is_a_file_unwritable_or_not_empty(model: Path, data: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("precious")
    refused(main, _args(model, data, tmp_path / "file"), capsys, ["--out", "is a file"],
            [tmp_path])
    refused(main, _args(model, data, tmp_path / "file" / "run"), capsys, "is a file",
            [tmp_path])
    refused(main, _args(model, data, Path("/sys/kernel/modprobe-run")), capsys,
            ["cannot write", "/sys/kernel"], [tmp_path])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep me")
    refused(main, _args(model, data, tmp_path / "full"), capsys,
            ["already exists", "--resume"], [tmp_path])


def test_resume_refusals_leave_the_run_untouched(model: Path, data: Path, finished: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    refused(main, _args(model, data, tmp_path / "none", "--resume"), capsys,
            "nothing to resume", [tmp_path])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    refused(main, _args(model, data, tmp_path / "other", "--resume"), capsys,
            "manifest.json", [tmp_path])
    changed = ["--model", str(model), "--data", str(data), "--out", str(finished), "--limit",
               "3", "--batch-size", "2", *FAST, "--resume"]
    refused(main, changed, capsys, ["limit: 4 -> 3", "--out"], [finished, data])


def test_resume_refuses_regenerated_data(model: Path, finished: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_tree(finished, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    data = tmp_path / "data"  # same path the run recorded? use a copy with one edited line
    shutil.copytree(manifest["data_folder"], data)
    manifest["options"]["data"] = str(data)
    (run / "manifest.json").write_text(json.dumps(manifest))
    lines = (data / "items.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["context"] = record["context"] + " Indeed."
    (data / "items.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    refused(main, _args(model, data, run, "--resume"), capsys,
            ["the dataset", "changed since the run started", "items differ"], [run, data])


def test_resume_refuses_a_retrained_model(model: Path, data: Path, finished: Path,
                                          tiny_dir: Callable[..., Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_tree(finished, tmp_path / "run")
    retrained = copy_tree(model, tmp_path / "model")
    shutil.copy(tiny_dir("llava", seed=1) / "model.safetensors",
                retrained / "model.safetensors")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["options"]["model"] = str(retrained)
    (run / "manifest.json").write_text(json.dumps(manifest))
    refused(main, _args(retrained, data, run, "--resume"), capsys,
            ["the model changed", "weights differ"], [run, retrained])


def test_resume_refuses_a_damaged_manifest(model: Path, data: Path, finished: Path,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_tree(finished, tmp_path / "run")
    (run / "manifest.json").write_text('{"options": ')
    refused(main, _args(model, data, run, "--resume"), capsys, ["manifest.json",
                                                                "not valid JSON"], [run])


# ------------------------------------------------------------------ the data
@pytest.mark.parametrize(("how", "names"), [
    ("empty", "empty file"), ("truncated", "truncated"), ("garbage", "not an image"),
    ("bomb", "too large"), ("symlink", "outside the dataset folder")])
def test_broken_images_are_refused_before_any_write(how: str, names: str, model: Path,
                                                    data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy_tree(data, tmp_path / "data")
    break_image(first_image(broken), how, outside=tmp_path / "outside")
    refused(main, _args(model, broken, tmp_path / "run"), capsys,
            ["line 1", "field 'image'", names], [tmp_path])
    assert not (tmp_path / "run").exists()


def test_image_damaged_during_a_run_keeps_finished_chunks(model: Path, data: Path,
                                                          tmp_path: Path) -> None:
    copy = copy_tree(data, tmp_path / "data")
    lines = [json.loads(x) for x in (copy / "items.jsonl").read_text().splitlines()]
    # the 4th item's image, used by no earlier item: damaged once chunk 0 is on disk
    earlier = {r["image"] for r in lines[:2]}
    later = next(r for r in lines[2:] if r["image"] not in earlier)
    order = [r for r in lines if r is not later]
    (copy / "items.jsonl").write_text("".join(json.dumps(r) + "\n"
                                              for r in [*order[:2], later, *order[2:]]))

    def damage(index: int) -> None:
        if index == 0:
            (copy / later["image"]).write_bytes(b"")

    config = StudyConfig(model=str(model), data=str(copy), out=str(tmp_path / "run"),
                         batch_size=2, limit=4, n_bootstrap=20, figures=False)
    with pytest.raises(DatasetError, match=f"item {later['id']!r}.*empty file"):
        run_study(config, progress=False, on_chunk=damage)
    assert (tmp_path / "run" / "chunks" / "00000" / "items.csv").is_file()


# ------------------------------------------------------------------ mid-run failures
def test_disk_full_mid_run_keeps_finished_chunks_then_resumes(
        model: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.study import runfolder

    real = runfolder.write_npy
    calls = {"n": 0}

    def full_on_second_chunk(path: Path, array: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, array)

    monkeypatch.setattr(runfolder, "write_npy", full_on_second_chunk)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(model, data, out)) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "--resume" in err and "Traceback" not in err
    assert (out / "chunks" / "00000" / "items.csv").is_file()
    kept = snapshot(out / "chunks" / "00000")
    monkeypatch.setattr(runfolder, "write_npy", real)
    # a kill during a chunk write leaves a temporary file: resume removes it
    stray = out / "chunks" / "00001" / ".modprobe-tmp.items.csv.abc123.tmp"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("half a table")
    assert main([*_args(model, data, out), "--resume"]) == 0
    assert not stray.exists()
    assert not (out / "chunks").exists(), "chunks are a second copy of a finished run"
    assert kept  # chunk 0 was reused, not recomputed: its rows are in the final table
    assert len(read_table(out / "items.csv")) == 4


def test_permission_error_mid_run_is_one_line(model: Path, data: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.study import runfolder

    def denied(path: Path, frame: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(runfolder, "write_csv", denied)
    capsys.readouterr()
    assert main(_args(model, data, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and "chunks" in err and "Traceback" not in err


# ------------------------------------------------------------------ valid handling
def test_finished_run_tables_types_modes_and_json(finished: Path) -> None:
    from modprobe.study.runfolder import read_table

    items = read_table(finished / "items.csv")
    assert items["id"].map(type).eq(str).all()
    summary_text = (finished / "summary.json").read_text()
    json.loads(summary_text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert not (finished / "chunks").exists()
    umask = os.umask(0)
    os.umask(umask)
    for path in (table_path(finished, "items"), finished / "summary.json",
                 finished / "manifest.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    manifest = json.loads((finished / "manifest.json").read_text())
    assert set(manifest["fingerprints"]) == {"data", "model"}
    assert manifest["analysis"]["n_bootstrap"] == 20


def test_numeric_looking_ids_stay_distinct(model: Path, data: Path, tmp_path: Path) -> None:
    copy = copy_tree(data, tmp_path / "data")
    lines = [json.loads(x) for x in (copy / "items.jsonl").read_text().splitlines()][:4]
    for record, new_id in zip(lines, ["0001", "1", "01", "1.0"]):
        record["id"] = new_id
    (copy / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    result = run_study(StudyConfig(model=str(model), data=str(copy), out=str(tmp_path / "run"),
                                   batch_size=2, n_bootstrap=20, figures=False),
                       progress=False)
    assert result.items["id"].tolist() == ["0001", "1", "01", "1.0"]
    from modprobe.study.runfolder import read_table

    assert read_table(tmp_path / "run" / "items.csv")["id"].tolist() == ["0001", "1", "01",
                                                                         "1.0"]
    assert read_table(tmp_path / "run" / "attention.csv")["id"].nunique() == 4


def test_resume_of_a_finished_run_records_new_analysis_options(
        model: Path, data: Path, finished: Path, tmp_path: Path) -> None:
    run = copy_tree(finished, tmp_path / "run")
    tables = snapshot(table_path(run, "items"), table_path(run, "layers"),
                      run / "attention_mass.npy")
    args = ["--model", str(model), "--data", str(data), "--out", str(run), "--limit", "4",
            "--batch-size", "2", "--bootstrap", "30", "--no-figures", "--quiet", "--resume"]
    assert main(args) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["analysis"]["n_bootstrap"] == 30
    assert manifest["options"]["n_bootstrap"] == 30
    assert snapshot(table_path(run, "items"), table_path(run, "layers"),
                    run / "attention_mass.npy") == tables


def test_reanalysis_records_its_options(finished: Path, tmp_path: Path) -> None:
    from modprobe.run import analyze_folder

    run = copy_tree(finished, tmp_path / "run")
    analyze_folder(run, n_bootstrap=25, figures=False, entropy_floor=0.01)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["analysis"]["n_bootstrap"] == 25
    assert manifest["analysis"]["entropy_floor"] == 0.01
    with pytest.raises(StudyError, match="not a finished run folder"):
        analyze_folder(tmp_path)


def test_api_refuses_bad_config_without_writing(model: Path, data: Path,
                                                tmp_path: Path) -> None:
    for bad in ({"n_bootstrap": 0}, {"groups": 0, "data": None}, {"top_k": -1},
                {"batch_size": 0}, {"device": "gpu"}):
        options = {"model": str(model), "data": str(data), "out": str(tmp_path / "run"),
                   "figures": False, **bad}
        before = snapshot(tmp_path)
        with pytest.raises(Exception) as info:
            run_study(StudyConfig(**options), progress=False)
        from modprobe.errors import ModprobeError

        assert isinstance(info.value, ModprobeError), info.value
        assert snapshot(tmp_path) == before


def test_refusal_after_generating_data_leaves_no_run_folder(
        model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.study import runner

    def refuse(*args: object, **kwargs: object) -> None:
        raise StudyError("refused after the dataset was generated")

    monkeypatch.setattr(runner, "data_fingerprint", refuse)
    out = tmp_path / "run"
    refused(main, ["--model", str(model), "--out", str(out), "--groups", "1", "--limit", "2",
                   *FAST], capsys, "refused after the dataset was generated", [tmp_path])
    assert not out.exists()  # the generated RUN/data went with it
