"""The study runner: end to end on tiny models, resumable, never overwriting a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modprobe.io import read_npy
from modprobe.layers import main
from modprobe.spans import SPAN_NAMES
from modprobe.study import StudyConfig, StudyError, attention_table, run_study
from modprobe.study.runfolder import read_table, table_path
from modprobe.testing import FAMILIES, build_tiny

FIGURES = {"following_curve.png", "uncertainty_distribution.png", "oscillation.png",
           "attention_mass.png"}


def _config(model: Path, data: Path, out: Path, **kw: object) -> StudyConfig:
    options = {"batch_size": 4, "limit": 12, "n_bootstrap": 50, "figures": False}
    options.update(kw)
    return StudyConfig(model=str(model), data=str(data), out=str(out), **options)


@pytest.mark.parametrize("family", FAMILIES)
def test_short_run_on_every_family(family: str, lowres_data: Path, tmp_path: Path) -> None:
    model = build_tiny(family, tmp_path / "model", seed=1)
    result = run_study(_config(model, lowres_data, tmp_path / "run", limit=6, batch_size=3),
                       progress=False)
    items = read_table(tmp_path / "run" / "items.csv")
    assert len(items) == 6
    assert (items["cluster"] == "g0000").all()  # the generator's group, for the bootstrap
    for column in ("y_vision", "y_text", "y_multi", "h_vision", "h_text", "h_multi"):
        assert items[column].notna().all(), column
    assert (items[["h_vision", "h_text", "h_multi"]] >= 0).all().all()
    mass = read_npy(tmp_path / "run" / "attention_mass.npy")
    assert mass.shape[:2] == (6, 3)
    np.testing.assert_allclose(mass.sum(axis=-1), 1.0, atol=1e-4)
    # vision-only and multi prompts give the image some attention; text-only gives it none
    assert (mass[:, 1, ..., 0] == 0).all()
    assert (mass[:, 0, ..., 0] > 0).all() and (mass[:, 2, ..., 0] > 0).all()
    # the description (context span) gets attention in text-only and multi prompts only
    context = SPAN_NAMES.index("context")
    assert (mass[:, 0, ..., context] == 0).all()
    assert (mass[:, 1, ..., context] > 0).all() and (mass[:, 2, ..., context] > 0).all()
    table = read_table(tmp_path / "run" / "attention.csv")
    assert list(table["span"].unique()) == list(SPAN_NAMES)
    assert result.summary["attention"]["multi"]["context"][0] > 0
    layers = read_table(tmp_path / "run" / "layers.csv")
    assert len(layers) == 6 * 3 * mass.shape[2]
    # candidates.csv: the model's own final candidate probabilities, which the last lens
    # layer reproduces (lens = logits)
    cands = read_table(tmp_path / "run" / "candidates.csv")
    labels = [c[len("prob_"):] for c in layers.columns if c.startswith("prob_")]
    assert len(cands) == 6 * 3 * len(labels)
    assert list(cands.columns) == ["id", "condition", "candidate", "logit", "prob"]
    last = layers[layers["layer"] == layers["layer"].max()].melt(
        id_vars=["id", "condition"], value_vars=[f"prob_{c}" for c in labels],
        var_name="candidate", value_name="lens_prob")
    last["candidate"] = last["candidate"].str.slice(len("prob_"))
    both = cands.merge(last, on=["id", "condition", "candidate"], validate="one_to_one")
    assert len(both) == len(cands)
    np.testing.assert_allclose(both["prob"], both["lens_prob"], atol=1e-5)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["family"] == family
    assert result.summary["n_items"] == 6


def test_figures_and_summary(llava_dir: Path, lowres_data: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    # A random tiny model gets most unimodal answers wrong: the paper's filter would
    # leave no law to draw, so this run keeps every conflict.
    code = main(["--model", str(llava_dir), "--data", str(lowres_data), "--out",
                 str(tmp_path / "run"), "--limit", "12", "--bootstrap", "50", "--quiet",
                 "--all-conflicts"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "TFR=" in printed and "balance_point=" in printed and "oscillation" in printed
    assert "every conflict kept" in printed
    written = {p.name for p in (tmp_path / "run" / "figures").iterdir()}
    assert FIGURES <= written
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert summary["lines"] and "tfr" in summary
    for key in ("balance_point", "balance_point_monotone"):
        assert set(summary[key]) >= {"value", "ci", "crosses"}
    assert set(summary["goodness_of_fit"]) >= {"statistic", "p_value", "verdict"}
    assert [step["step"] for step in summary["filter_steps"]][:2] == ["rows", "no_conflict"]
    # The bring-your-own-predictions CLI reproduces the run's summary from items.csv
    # alone: it reads the run's options from manifest.json and finds the cluster column.
    from modprobe.following import main as following_main

    assert following_main([str(tmp_path / "run" / "items.csv")]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    # (The run adds what needs its captures: oscillation and attention lines.)
    expected = [line for line in summary["lines"]
                if not line.startswith(("oscillation", "attention", "note: "))]
    assert [line for line in again if not line.startswith("note: ")] == expected


def test_run_without_data_generates_it_into_the_run_folder(
        llava_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's main command gives no --data: the run writes its dataset into
    RUN/data and goes on (that folder is the run's own, not a user's file in the way)."""
    out = tmp_path / "run"
    code = main(["--model", str(llava_dir), "--out", str(out), "--groups", "1", "--limit", "6",
                 "--batch-size", "3", "--bootstrap", "50", "--no-figures", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert (out / "data" / "items.jsonl").is_file() and table_path(out, "items").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    # and the folder, now holding a run, is still never overwritten
    code = main(["--model", str(llava_dir), "--out", str(out), "--groups", "1", "--quiet"])
    assert code == 2 and "already exists" in capsys.readouterr().err


def test_existing_run_is_never_overwritten(llava_dir: Path, lowres_data: Path,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code = main(["--model", str(llava_dir), "--data", str(lowres_data), "--out", str(out),
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err
    assert (out / "precious.txt").read_text() == "keep me"


def test_resume_refuses_changed_options(llava_dir: Path, lowres_data: Path, tmp_path: Path) -> None:
    run_study(_config(llava_dir, lowres_data, tmp_path / "run", limit=4), progress=False)
    with pytest.raises(StudyError, match="different options.*limit"):
        run_study(_config(llava_dir, lowres_data, tmp_path / "run", limit=8, resume=True),
                  progress=False)


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "lava", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "unknown model alias 'lava'" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "items.jsonl").write_text('{"id": 1}\n')
    assert main(["--model", "llava", "--data", str(tmp_path / "bad"), "--out",
                 str(tmp_path / "r2")]) == 2
    assert "line 1" in capsys.readouterr().err


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "modprobe.layers", *args, "--quiet",
                             "--no-figures"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def test_killed_run_resumes_to_identical_tables(llava_dir: Path, lowres_data: Path,
                                               tmp_path: Path) -> None:
    args = ["--model", str(llava_dir), "--data", str(lowres_data), "--limit", "12",
            "--batch-size", "2", "--bootstrap", "50"]
    # the reference: one uninterrupted run
    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference), "--quiet", "--no-figures"]) == 0

    # a run killed (SIGKILL: no cleanup at all) after its first chunks are on disk
    out = tmp_path / "killed"
    proc = _start([*args, "--out", str(out)])
    deadline = time.time() + 120
    while not (out / "chunks" / "00001" / "items.csv").exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.time() < deadline, "the run wrote no chunk in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not table_path(out, "items").exists(), "the run finished before it could be killed"
    finished = sorted(p.name for p in (out / "chunks").iterdir()
                      if (p / "items.csv").exists())
    assert len(finished) < 6

    assert main([*args, "--out", str(out), "--resume", "--quiet", "--no-figures"]) == 0
    for table in ("items.csv", "layers.csv", "attention.csv", "oscillation.csv"):
        pd.testing.assert_frame_equal(read_table(out / table), read_table(reference / table))
    np.testing.assert_array_equal(read_npy(out / "attention_mass.npy"),
                                  read_npy(reference / "attention_mass.npy"))


def test_cluster_column_is_used_only_when_every_item_has_a_label() -> None:
    from modprobe.study.report import cluster_column

    assert cluster_column(pd.DataFrame({"id": ["a", "b"]})) == (None, None)
    assert cluster_column(pd.DataFrame({"cluster": [None, None]})) == (None, None)
    assert cluster_column(pd.DataFrame({"cluster": ["g0", "g1"]})) == ("cluster", None)
    column, why = cluster_column(pd.DataFrame({"cluster": ["g0", None, "g1"]}))
    assert column is None and "1 of 3 items have no cluster label" in why


def test_attention_table_and_summary_spans() -> None:
    from modprobe.study.report import attention_summary

    rng = np.random.default_rng(0)
    mass = rng.dirichlet(np.ones(len(SPAN_NAMES)), size=(2, 3, 4, 2)).astype(np.float32)
    mass[..., 1:3] = 0  # no video, no audio
    table = attention_table(mass, ["a", "b"])
    assert len(table) == 2 * 3 * 4 * len(SPAN_NAMES)
    multi_context = table.query("condition == 'multi' and span == 'context' and layer == 2")
    np.testing.assert_allclose(multi_context["mass"], mass[:, 2, 2, :, 3].mean(axis=1), rtol=1e-6)
    summary, lines = attention_summary(mass)
    assert set(summary["multi"]) == {"image", "context", "text"}
    np.testing.assert_allclose(summary["multi"]["context"][0], mass[:, 2, 0, :, 3].mean(),
                               rtol=1e-6)
    assert lines[0].startswith("attention (multi prompts") and "context" in lines[0]
    # a run written before the context span (four spans) still reads
    legacy = attention_table(mass[..., [0, 1, 2, 4]], ["a", "b"])
    assert list(legacy["span"].unique()) == ["image", "video", "audio", "text"]
    with pytest.raises(ValueError, match="span axis of 3"):
        attention_table(mass[..., :3], ["a", "b"])


def test_sharded_chunks_gather_to_the_tables_of_one_process(tmp_path: Path) -> None:
    """Two shards capture disjoint chunks of one folder; gathering gives the single-process
    tables, and a shard never writes another's chunk (the driver's data-parallel seam)."""
    from modprobe.study.driver import RunDriver, RunSpec, Shard

    items = [f"{i:04d}" for i in range(7)]

    def capture(chunk: list[str]) -> dict[str, object]:
        return {"mass.npy": np.array([[int(i)] for i in chunk], np.float32),
                "items.csv": pd.DataFrame({"id": chunk})}

    def driver(out: Path) -> RunDriver:
        spec = RunSpec(kind="demo", out=out, resume=False, options={}, resume_keys=(),
                       batch_size=2, tables=("items.csv", "mass.npy"))
        run = RunDriver(spec)
        out.mkdir()
        return run

    whole = driver(tmp_path / "whole").run_chunks(items, capture, progress=False).tables
    shared = driver(tmp_path / "shared")
    seen: list[int] = []
    shared.capture_chunks(shared.chunks(items), capture, False, seen.append, Shard(1, 2))
    assert seen == [1, 3]  # rank 1 of 2 takes the odd chunks only
    assert sorted(p.name for p in (tmp_path / "shared" / "chunks").iterdir()) == ["00001", "00003"]
    shared.capture_chunks(shared.chunks(items), capture, False, seen.append, Shard(0, 2))
    assert seen == [1, 3, 0, 2]
    gathered = shared.gather(len(shared.chunks(items))).tables
    assert gathered["items.csv"]["id"].tolist() == items == whole["items.csv"]["id"].tolist()
    np.testing.assert_array_equal(gathered["mass.npy"], whole["mass.npy"])
    with pytest.raises(StudyError, match="shard rank"):
        Shard(2, 2)


def test_analysis_options_have_one_definition_and_one_check() -> None:
    from modprobe.study import AnalysisOptions

    config = StudyConfig(model="m", data=None, out="o", n_bootstrap=30, axis="abs")
    options = AnalysisOptions.of(config, seed=4)
    assert (options.n_bootstrap, options.axis, options.seed) == (30, "abs", 4)
    assert AnalysisOptions.of({"n_bootstrap": 30}).axis == "rel"  # an old manifest: defaults
    for bad in ({"n_bootstrap": 0}, {"axis": "log"}, {"entropy_floor": -1.0},
                {"balance_estimate": "mean"}):
        with pytest.raises(StudyError, match=next(iter(bad))):
            AnalysisOptions.of(bad)
