"""The interference runner: every family, resumable, bad input refused before any write."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modprobe.data.color_tasks import generate_color_tasks
from modprobe.data.tasks import load_tasks
from modprobe.interference import main
from modprobe.io import read_npy
from modprobe.perturb import BUILTIN, applicable, default_perturbations
from modprobe.spans import SPAN_NAMES
from modprobe.study.interference import InterferenceConfig, run_interference
from modprobe.study.runfolder import read_table, table_path
from modprobe.testing import FAMILIES

LINE = re.compile(r"^(\w+): accuracy=(\d\.\d{3}|nan) ci=\[\S+, \S+\]"
                  r"(?: delta=(\d\.\d{3}|nan) ci=\[\S+, \S+\])? n=(\d+)$")
FIGURES = {"radar.png", "flip_rates.png", "attention_shift.png"}


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    generate_color_tasks(root, groups=2, seed=0, variant="lowres", fmt="choice",
                         tiers=[3], text_tiers=[1])
    return root


def _expected_rows(tasks_dir: Path, baseline: str = "noise", draws: int = 5) -> int:
    names = default_perturbations(BUILTIN, baseline)
    return draws * sum(1 + len(applicable(item, names)) for item in load_tasks(tasks_dir))


@pytest.mark.parametrize("family", FAMILIES)
def test_short_run_on_every_family(family: str, tiny_dir, tasks_dir: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_interference(InterferenceConfig(
        model=str(tiny_dir(family)), data=str(tasks_dir), out=str(out), batch_size=8,
        n_bootstrap=100, figures=False, uf_sentences=1, draws=1), progress=False)
    items = read_table(out / "items.csv")
    assert len(items) == _expected_rows(tasks_dir, draws=1) == len(result.items)
    # every image-heavy item gets the text perturbations, every text-heavy one the image ones
    heavy = items[items["relevant"] == "image"].groupby("id")["perturbation"].apply(set)
    assert all(p == {"clean", "UF", "MD", "OCR"} for p in heavy)
    # paper 003's baseline: the clean text-heavy input is a noise image, RI/FB/FW replace it
    light = items[items["relevant"] == "text"].groupby("id")["perturbation"].apply(set)
    assert all(p == {"clean", "RI", "FB", "FW"} for p in light)
    options = {t.id: set(t.options) for t in load_tasks(tasks_dir)}
    assert all(c in options[i] | {"unreadable"} for i, c in zip(items["id"], items["category"]))
    mass = read_npy(out / "attention_mass.npy")
    assert mass.shape[0] == len(items) and mass.shape[-1] == len(SPAN_NAMES)
    assert ((mass >= 0) & (mass <= 1 + 1e-5)).all()
    image_mass = mass[..., SPAN_NAMES.index("image")].sum(axis=(1, 2))
    # every row has an image: image-heavy items their own, text-heavy ones noise or a
    # perturbation's image
    assert (image_mass > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    lines = [line for line in summary["lines"] if not line.startswith("note")]
    assert [LINE.match(line).group(1) for line in lines] == ["clean", "UF", "MD", "OCR",
                                                             "RI", "FB", "FW"]
    assert any("random-noise image" in line for line in summary["lines"])
    shift = read_table(out / "attention_shift.csv")
    assert set(shift["perturbation"]) == {"UF", "MD", "OCR", "RI", "FB", "FW"}
    assert (shift.loc[shift["span"] == "image", "clean"] > 0).all()  # the noise image
    if "context" in SPAN_NAMES:  # text perturbations are measured on the description's tokens
        text = shift[shift["perturbation"].isin(["UF", "MD", "OCR"])]
        assert set(text["span"]) == {"context"}
        assert (text["clean"] == 0).all() and (text["perturbed"] > 0).all()
    layers = read_table(out / "layers.csv")
    assert len(layers) == len(items) * mass.shape[1]


def test_no_image_baseline_keeps_rp_and_clean_text_heavy_rows_without_image(
        tiny_dir, tasks_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_interference(InterferenceConfig(
        model=str(tiny_dir("llava")), data=str(tasks_dir), out=str(out), batch_size=8,
        n_bootstrap=100, figures=False, uf_sentences=1, text_baseline="none", draws=1),
        progress=False)
    items = read_table(out / "items.csv")
    assert len(items) == _expected_rows(tasks_dir, "none", draws=1)
    light = items[items["relevant"] == "text"].groupby("id")["perturbation"].apply(set)
    assert all(p == {"clean", "RP", "RI", "FB", "FW"} for p in light)
    image_mass = read_npy(out / "attention_mass.npy")[..., SPAN_NAMES.index("image")].sum(
        axis=(1, 2))
    clean_text = ((items["relevant"] == "text") & (items["perturbation"] == "clean")).to_numpy()
    assert (image_mass[clean_text] == 0).all() and (image_mass[~clean_text] > 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["text_baseline"] == "none"


def test_perturbation_draws_enter_the_run_and_its_intervals(tiny_dir, tasks_dir: Path,
                                                            tmp_path: Path) -> None:
    # Two draws: each perturbation runs with two seeds derived from the run's seed, the
    # per-draw table keeps each draw's rates, and the printed intervals are over each
    # item's draw averages.
    from modprobe.analysis.interference.effects import analyze_interference
    from modprobe.perturb import draw_seeds

    out = tmp_path / "run"
    run_interference(InterferenceConfig(
        model=str(tiny_dir("llava")), data=str(tasks_dir), out=str(out), batch_size=8,
        n_bootstrap=100, figures=False, uf_sentences=1, draws=2, data_seed=3), progress=False)
    items = read_table(out / "items.csv")
    assert len(items) == _expected_rows(tasks_dir, draws=2)
    assert sorted(set(zip(items["draw"], items["seed"]))) == list(enumerate(draw_seeds(3, 2)))
    layers = read_table(out / "layers.csv")
    assert set(layers["draw"]) == {0, 1}
    per_draw = read_table(out / "draws.csv")
    assert len(per_draw[per_draw["perturbation"] == "MD"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_draws"] == 2
    assert any("2 perturbation draws per item" in line for line in summary["lines"])
    # the interval is the one of the per-item draw averages (cluster bootstrap)
    md = next(c for c in summary["conditions"] if c["perturbation"] == "MD")
    flips = read_table(out / "flips.csv")
    md_flips = flips[flips["perturbation"] == "MD"]
    assert md["delta"]["estimate"] == pytest.approx(md_flips["flipped"].mean())
    assert md["n"] == md_flips["id"].nunique()
    one = analyze_interference(items[items["draw"] == 0], cluster="cluster",
                               n_bootstrap=100)
    assert one.n_draws == 1 and one.condition("MD").n == md["n"]


@pytest.mark.parametrize("family, lens_only", [("idefics3", False), ("gemma3", True)])
def test_generic_families_run(family: str, lens_only: bool, tasks_dir: Path,
                              tmp_path: Path) -> None:
    from modprobe.testing.families import build_family

    model = build_family(family, tmp_path / "model")
    run_interference(InterferenceConfig(
        model=str(model), data=str(tasks_dir), out=str(tmp_path / "run"), batch_size=8,
        n_bootstrap=100, figures=False, uf_sentences=1, attention=not lens_only, draws=1),
        progress=False)
    items = read_table(tmp_path / "run" / "items.csv")
    assert len(items) == _expected_rows(tasks_dir, draws=1)
    assert (tmp_path / "run" / "attention_mass.npy").exists() != lens_only
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [LINE.match(line).group(1) for line in summary["lines"] if LINE.match(line)][:2] \
        == ["clean", "UF"]


def test_cli_prints_lines_and_draws_figures(tiny_dir, tasks_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["--model", str(tiny_dir("llava")), "--data", str(tasks_dir), "--out", str(out),
                 "--perturb", "MD,RP", "--bootstrap", "100", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in printed if LINE.match(line)]
    assert [LINE.match(line).group(1) for line in lines] == ["clean", "MD", "RP"]
    assert LINE.match(lines[0]).group(3) is None and LINE.match(lines[1]).group(3)
    assert {p.name for p in (out / "figures").iterdir()} == FIGURES
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["options"]["perturb"] == ["MD", "RP"]
    assert manifest["image_size"] == [32, 32]
    assert manifest["analysis"]["n_bootstrap"] == 100 and manifest["analysis"]["seed"] == 0
    # re-analysis takes the run's own options: the same summary, recorded in the manifest
    from modprobe.run import analyze_interference_folder

    before = json.loads((out / "summary.json").read_text())
    summary, _, _, _ = analyze_interference_folder(out, figures=False)
    assert summary["lines"] == before["lines"]
    analysis = json.loads((out / "manifest.json").read_text())["analysis"]
    assert analysis["n_bootstrap"] == 100 and analysis["figures"] is False
    # never overwritten
    assert main(["--model", str(tiny_dir("llava")), "--data", str(tasks_dir), "--out", str(out),
                 "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def _one_line_error(args: list[str], capsys: pytest.CaptureFixture[str], out: Path,
                    expected: str) -> None:
    assert main([*args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not out.exists(), "a refused run wrote its folder"


def test_bad_input_is_one_line_and_writes_nothing(tiny_dir, tasks_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = ["--model", str(tiny_dir("llava"))]
    _one_line_error([*model, "--data", str(tasks_dir), "--perturb", "MD,XX"], capsys,
                    tmp_path / "a", "unknown perturbation 'XX'; known: UF, MD, OCR, RP, RI, FB, FW")
    empty = tmp_path / "photos"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    _one_line_error([*model, "--data", str(tasks_dir), "--ri-folder", str(empty)], capsys,
                    tmp_path / "b", "has no usable images")

    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("RGB", (8, 8)).save(bad / "a.png")
    (bad / "items.jsonl").write_text(json.dumps(
        {"id": "q1", "question": "What color?", "answer": "pink", "relevant": "image",
         "image": "a.png", "options": ["red", "blue"], "format": "choice"}) + "\n")
    _one_line_error([*model, "--data", str(bad)], capsys, tmp_path / "c",
                    "gold answer 'pink' is not among the options")
    (bad / "items.jsonl").write_text(json.dumps(
        {"id": "q2", "question": "What color is the circle?", "answer": "red",
         "relevant": "text", "image": "a.png"}) + "\n")
    _one_line_error([*model, "--data", str(bad)], capsys, tmp_path / "d",
                    "text-heavy item needs its description")
    _one_line_error(["--model", "lava", "--data", str(tasks_dir)], capsys, tmp_path / "e",
                    "unknown model alias 'lava'")


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "modprobe.interference", *args, "--quiet",
                             "--no-figures"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_tables(tiny_dir, tasks_dir: Path,
                                               tmp_path: Path) -> None:
    args = ["--model", str(tiny_dir("llava")), "--data", str(tasks_dir), "--batch-size", "1",
            "--bootstrap", "100"]
    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference), "--quiet", "--no-figures"]) == 0

    out = tmp_path / "killed"
    proc = _start([*args, "--out", str(out)])
    deadline = time.time() + 180
    while not (out / "chunks" / "00001" / "items.csv").exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.time() < deadline, "the run wrote no chunk in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not table_path(out, "items").exists(), "the run finished before it could be killed"
    assert main([*args, "--out", str(out), "--resume", "--quiet", "--no-figures"]) == 0
    for table in ("items.csv", "layers.csv", "attention.csv", "flips.csv",
                  "attention_shift.csv"):
        pd.testing.assert_frame_equal(read_table(out / table), read_table(reference / table))
    np.testing.assert_array_equal(read_npy(out / "attention_mass.npy"),
                                  read_npy(reference / "attention_mass.npy"))
    a = json.loads((out / "summary.json").read_text())
    b = json.loads((reference / "summary.json").read_text())
    assert a["lines"] == b["lines"]
    # a resumed run refuses changed options
    assert main([*args, "--out", str(out), "--resume", "--data-seed", "1", "--quiet"]) == 2


def test_resume_refuses_changed_tasks_and_a_failed_start_leaves_no_folder(
        tiny_dir, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from modprobe.study import interference
    from modprobe.study.runfolder import StudyError

    data = tmp_path / "tasks"
    generate_color_tasks(data, groups=1, seed=0, variant="lowres", fmt="choice",
                         tiers=[3], text_tiers=[1])
    model = ["--model", str(tiny_dir("llava"))]
    args = [*model, "--data", str(data), "--perturb", "MD", "--bootstrap", "20",
            "--no-figures", "--quiet"]
    run = tmp_path / "run"
    assert main([*args, "--out", str(run)]) == 0
    before = (run / "manifest.json").read_text()
    assert set(json.loads(before)["fingerprints"]) == {"data", "model"}
    # the task folder changes: resuming is refused, and the run is left as it was
    lines = (data / "items.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["question"] += " Answer in one word."
    (data / "items.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert main([*args, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "changed since the run started" in err and "items differ" in err, err
    assert (run / "manifest.json").read_text() == before

    # a start that fails after the model loaded leaves no folder, with or without --data
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise StudyError("refused for the test")

    monkeypatch.setattr(interference, "model_fingerprint", refuse)
    for given, out in ((["--data", str(data)], tmp_path / "a"), (["--groups", "1"], tmp_path / "b")):
        assert main([*model, *given, "--perturb", "MD", "--out", str(out), "--quiet",
                     "--no-figures"]) == 2
        assert "refused for the test" in capsys.readouterr().err
        assert not out.exists(), "a failed start left its folder"
    monkeypatch.undo()

    # without --data the run generates its tasks into its own new folder
    out = tmp_path / "generated"
    assert main([*model, "--groups", "1", "--perturb", "MD", "--bootstrap", "20",
                 "--limit", "4", "--out", str(out), "--quiet", "--no-figures"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and (out / "data" / "items.jsonl").is_file()
    assert set(manifest["fingerprints"]) == {"data", "model"}
