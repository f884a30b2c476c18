"""Runs loaded back with modprobe.load_run: every kind, re-analysis beside, seeds, formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import modprobe
from modprobe.data import generate_colors
from modprobe.data.color_tasks import generate_color_tasks
from modprobe.study import StudyConfig, StudyError
from modprobe.study.interference import InterferenceConfig
from modprobe.testing import build_tiny


def _printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The summary lines a runner's command printed (the lines before the run folder's)."""
    lines = capsys.readouterr().out.splitlines()
    return [line for line in lines[:lines.index(next(x for x in lines
                                                     if x.startswith("run folder:")))] if line]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llava", tmp_path_factory.mktemp("llava"), seed=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_colors(root, groups=1, seed=3, variant="lowres")
    return root


def _study_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["--model", str(model), "--data", str(data), "--out", str(out), "--limit", "8",
            "--batch-size", "4", "--bootstrap", "40", "--no-figures", "--quiet"]


def test_a_study_loads_back_with_the_summary_it_printed(
        model: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.layers import main

    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_study_args(model, data, out)) == 0
    printed = _printed(capsys)
    run = modprobe.load_run(out)
    assert run.summary["lines"] == printed and printed
    assert isinstance(run.config, StudyConfig)
    assert (run.config.model, run.config.limit, run.config.n_bootstrap) == (str(model), 8, 40)
    assert {"items", "layers", "attention", "oscillation", "attention_mass"} <= set(run.tables)
    items = run.tables["items"]
    assert len(items) == 8 and items["id"].map(type).eq(str).all()
    assert run.tables["attention_mass"].shape[:2] == (8, 3)
    # Parquet by default, the chunks compacted into it; CSV on request, read back the same
    assert (out / "items.parquet").is_file() and not (out / "items.csv").exists()
    assert not (out / "chunks").exists()
    capsys.readouterr()
    assert main([*_study_args(model, data, tmp_path / "csv"), "--format", "csv"]) == 0
    assert _printed(capsys) == printed
    as_csv = modprobe.load_run(tmp_path / "csv")
    assert (tmp_path / "csv" / "items.csv").is_file() and as_csv.config.table_format == "csv"
    assert not list((tmp_path / "csv").glob("*.parquet"))
    for name in ("items", "layers", "attention", "oscillation", "candidates"):
        pd.testing.assert_frame_equal(as_csv.tables[name], run.tables[name], check_dtype=False)


def test_reanalyse_writes_beside_and_records_itself(
        model: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.layers import main

    out = tmp_path / "run"
    assert main(_study_args(model, data, out)) == 0
    own = (out / "summary.json").read_text()
    run = modprobe.load_run(out)
    again = run.reanalyze(seed=7, n_bootstrap=30)
    assert again.folder == out / "analysis-2" and (again.folder / "summary.json").is_file()
    assert (again.folder / "oscillation.parquet").is_file()
    assert (out / "summary.json").read_text() == own  # the run's own analysis is untouched
    assert (again.options.seed, again.options.n_bootstrap) == (7, 30)
    third = modprobe.load_run(out).reanalyze(axis="abs")
    assert third.folder.name == "analysis-3"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(a["folder"], a["seed"], a["n_bootstrap"], a["axis"])
            for a in manifest["analyses"]] == [("analysis-2", 7, 30, "rel"),
                                               ("analysis-3", 0, 40, "abs")]
    # the same options give the same numbers as the run's own analysis
    same = modprobe.load_run(out).reanalyze()
    assert same.summary["lines"] == json.loads(own)["lines"]
    with pytest.raises(StudyError, match="no analysis option"):
        run.reanalyze(bootstrap=3)
    with pytest.raises(StudyError, match="n_bootstrap"):
        run.reanalyze(n_bootstrap=0)


def test_another_bootstrap_seed_resumes_and_old_manifests_load(
        model: Path, data: Path, tmp_path: Path) -> None:
    from modprobe.layers import main

    out = tmp_path / "run"
    assert main(_study_args(model, data, out)) == 0
    # the bootstrap seed is an analysis option: a resume with another one is not refused
    assert main([*_study_args(model, data, out), "--resume", "--seed", "5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["analysis"]["seed"] == 5 and manifest["options"]["data_seed"] == 0
    # a manifest written before data_seed existed: its seed seeded the data
    options = manifest["options"]
    del options["data_seed"]
    options["seed"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    config = modprobe.load_run(out).config
    assert (config.seed, config.data_seed) == (3, 3)
    assert main([*_study_args(model, data, out), "--resume", "--seed", "3",
                 "--data-seed", "3"]) == 0


def test_an_interference_run_loads_back_with_the_summary_it_printed(
        tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.interference import main

    tasks = tmp_path / "tasks"
    generate_color_tasks(tasks, groups=1, seed=0, variant="lowres", fmt="choice",
                         tiers=[3], text_tiers=[1])
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["--model", str(model), "--data", str(tasks), "--out", str(out),
                 "--perturb", "MD,RP", "--bootstrap", "30", "--no-figures", "--quiet"]) == 0
    printed = _printed(capsys)
    run = modprobe.load_run(out)
    assert run.summary["lines"] == printed and printed
    assert isinstance(run.config, InterferenceConfig) and run.config.perturb == ["MD", "RP"]
    assert set(run.tables["items"]["perturbation"]) == {"clean", "MD", "RP"}
    # the default five perturbation draws load back: the draw column and the per-draw table
    assert run.config.draws == 5 and set(run.tables["items"]["draw"]) == set(range(5))
    assert set(run.tables["draws"]["draw"]) == set(range(5))
    again = run.reanalyze(seed=2)
    assert again.folder.name == "analysis-2" and (again.folder / "flips.parquet").is_file()
    assert json.loads((out / "manifest.json").read_text())["analyses"][0]["seed"] == 2
    with pytest.raises(StudyError, match="no analysis option axis"):
        run.reanalyze(axis="abs")


def test_a_fine_tuning_run_loads_back_with_the_summary_it_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.finetune.__main__ import main
    from modprobe.finetune.config import TrainConfig

    out = tmp_path / "ft"
    capsys.readouterr()
    assert main(["--model", "organism", "--out", str(out), "--steps", "2", "--batch-size", "2",
                 "--threads", "1", "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()[0]
    run = modprobe.load_run(out)
    # the printed line, less the wall time (a property of that process, not of the run)
    assert run.summary["lines"] == [re.sub(r" in \d+ s;", ";", printed)]
    assert isinstance(run.config, TrainConfig) and run.config.steps == 2
    assert list(run.tables["log"]["step"]) == [1, 2]
    with pytest.raises(StudyError, match="no analysis"):
        run.reanalyze()


def test_load_run_refuses_what_is_not_a_finished_run(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not a finished run folder"):
        modprobe.load_run(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "following", "options": {},
                                                        "status": "running"}))
    with pytest.raises(StudyError, match="--resume"):
        modprobe.load_run(tmp_path)


def test_tables_round_trip_through_csv_and_parquet_keeping_text(tmp_path: Path) -> None:
    from modprobe.analysis.table import read_table
    from modprobe.io import write_table

    frame = pd.DataFrame({"id": ["0001", "1", "01", "NA"], "cluster": ["007", "7", None, "7"],
                          "h_text": [0.5, 1.0, 0.0, 2.0]})
    for name in ("t.csv", "t.parquet"):
        write_table(tmp_path / name, frame)
        back = read_table(tmp_path / name, validate=False)
        assert back["id"].tolist() == ["0001", "1", "01", "NA"], name
        assert back["cluster"].iloc[[0, 1, 3]].tolist() == ["007", "7", "7"], name
        assert pd.isna(back["cluster"].iloc[2]), name
        assert back["h_text"].tolist() == [0.5, 1.0, 0.0, 2.0], name


def test_old_analyse_spellings_warn_and_delegate(tmp_path: Path) -> None:
    """The British spellings still work, with a DeprecationWarning, and reach analyze_*."""
    from modprobe.run import analyse_folder  # deprecated alias

    with pytest.warns(DeprecationWarning, match="analyze_folder"), pytest.raises(
            StudyError, match="not a finished run folder"):
        analyse_folder(tmp_path)  # deprecated alias
