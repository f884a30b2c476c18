"""``python -m modprobe.mma`` end to end on a tiny random Qwen2.5-Omni thinker."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modprobe.mma import main
from modprobe.testing.families import build_family

FAST = ["--visual", "image", "--clips", "6", "--draws", "2", "--letters", "200",
        "--bootstrap", "200", "--batch-size", "3", "--quiet"]


@pytest.fixture(scope="module")
def omni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_family("qwen2_5_omni_thinker", tmp_path_factory.mktemp("omni"))


@pytest.mark.slow
def test_run_writes_tables_figures_and_resumes(omni: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["--model", str(omni), "--out", str(run), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "misaligned | audio prompt: accuracy=" in printed
    items = pd.read_csv(run / "items.csv")
    # 6 clips x 2 prompt types: aligned, audio_removed or frames_zeroed (1 draw each),
    # misaligned, caption, long_text (2 draws each)
    assert len(items) == 6 * 2 * (1 + 1 + 3 * 2)
    accuracy = pd.read_csv(run / "accuracy.csv")
    assert len(accuracy) == 10 and (accuracy["n_clusters"] == 6).all()
    swapped = items[(items["condition"] == "misaligned") & (items["ask"] == "audio")]
    aligned = items[(items["condition"] == "aligned") & (items["ask"] == "audio")]
    assert (swapped.groupby("item")["gold"].first() != aligned.set_index("item")["gold"]).all()
    attention = pd.read_csv(run / "attention.csv")
    spans = attention.groupby("span")["mass"].max()
    assert spans["image"] > 0 and spans["audio"] > 0 and spans["video"] == 0
    assert spans["context"] > 0  # the caption
    contrast = pd.read_csv(run / "contrast.csv")
    assert set(contrast["span"]) == {"image", "audio", "context", "text"}
    assert set(contrast["condition"]) == {"aligned", "misaligned", "caption", "long_text"}
    for name in ("d_per_layer.png", "attention_mass.png"):
        assert (run / "figures" / name).stat().st_size > 10_000
    again = main(["--model", str(omni), "--out", str(run), *FAST, "--resume"])
    assert again == 0
    pd.testing.assert_frame_equal(pd.read_csv(run / "items.csv"), items)
    capsys.readouterr()
    assert main(["--model", str(omni), "--out", str(run), *FAST]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--conditions", "aligned,shuffled"], "unknown condition 'shuffled'"),
    (["--data", "no-such-folder"], "no such clip folder"),
])
def test_bad_input_fails_before_writing(omni: Path, tmp_path: Path, capsys, extra, message) -> None:
    run = tmp_path / "run"
    assert main(["--model", str(omni), "--out", str(run), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not run.exists()


def test_video_without_the_extra_names_the_install(omni: Path, tmp_path: Path, capsys) -> None:
    from modprobe.adapters.media import MediaError, require_video

    try:
        require_video()
    except MediaError:
        pass
    else:
        pytest.skip("the video extra is installed")
    run = tmp_path / "run"
    assert main(["--model", str(omni), "--out", str(run), "--visual", "video"]) == 2
    assert "pip install 'modprobe[video]'" in capsys.readouterr().err
    assert not run.exists()


def test_bad_clip_folder_is_reported_with_line_and_field(omni: Path, tmp_path: Path,
                                                         capsys) -> None:
    data = tmp_path / "clips"
    data.mkdir()
    (data / "clips.jsonl").write_text('{"id": "a", "video": "x.mp4", "visual_class": "circle",'
                                      ' "audio_class": "hum"}\n')
    run = tmp_path / "run"
    assert main(["--model", str(omni), "--out", str(run), "--data", str(data), *FAST]) == 2
    err = capsys.readouterr().err
    assert "clips.jsonl line 1, field 'video': no such file" in err
    assert not run.exists()
