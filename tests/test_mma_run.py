"""``modprobe mma`` end to end on a tiny random Qwen2.5-Omni thinker."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import modprobe
from modprobe.commands import main as modprobe_main
from modprobe.mma import main
from modprobe.testing.families import build_family

FAST = ["--table-format", "csv", "--visual", "image", "--clips", "6", "--draws", "2", "--letters", "200",
        "--bootstrap", "200", "--batch-size", "3", "--quiet"]


@pytest.fixture(scope="module")
def omni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_family("qwen2_5_omni_thinker", tmp_path_factory.mktemp("omni"))


@pytest.mark.slow
def test_run_writes_tables_figures_and_resumes(omni: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert modprobe_main(["mma", "--model", str(omni), "--out", str(run), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "misaligned | audio prompt: accuracy=" in printed
    # the finished run loads back with the summary it printed, and re-analysing its
    # tables with the same options gives that summary again
    loaded = modprobe.load_run(run)
    assert loaded.kind.name == "mma" and loaded.config.clips == 6
    assert loaded.summary["lines"] and all(line in printed for line in loaded.summary["lines"])
    assert printed.count(" prompt: accuracy=") == len(
        [x for x in loaded.summary["lines"] if " prompt: accuracy=" in x])
    assert loaded.reanalyze(figures=False).summary == loaded.summary
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


def _write_clips(folder: Path, seconds: float, rate: int = 16000, audio: bool = True) -> None:
    """Two clips (a frame folder and a WAV each) of the given length and sample rate."""
    import json

    import numpy as np
    from PIL import Image

    from modprobe.adapters.media import Audio, write_wav

    lines = []
    for i, (shape, sound) in enumerate((("circle", "hum"), ("square", "bell"))):
        frames = folder / f"c{i}"
        frames.mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(frames / f"frame_{k:03d}.png")
        line = {"id": f"c{i}", "video": f"c{i}", "fps": 1.0, "visual_class": shape,
                "audio_class": sound}
        if audio:
            write_wav(folder / f"c{i}.wav", Audio(np.zeros(int(seconds * rate), np.float32), rate))
            line["audio"] = f"c{i}.wav"
        lines.append(json.dumps(line))
    (folder / "clips.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("seconds, rate, message", [
    (1.0, 8000, "8000 Hz, but the feature extractor takes 16000 Hz; resample"),
    (31.0, 16000, "longer than the 30 s the feature extractor takes"),
])
def test_clips_the_model_cannot_take_are_refused(omni: Path, tmp_path: Path, capsys, seconds,
                                                 rate, message) -> None:
    data = tmp_path / "clips"
    _write_clips(data, seconds, rate)
    run = tmp_path / "run"
    assert main(["--model", str(omni), "--out", str(run), "--data", str(data), *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and "clip 'c0'" in err and not run.exists()


def test_prompt_longer_than_the_context_says_what_fits(omni: Path, tmp_path: Path,
                                                       capsys) -> None:
    """A model with 40 positions (its saved config edited) cannot take a 1-second clip."""
    import json
    import shutil

    small = tmp_path / "small"
    shutil.copytree(omni, small)
    config = json.loads((small / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 40
    (small / "config.json").write_text(json.dumps(config))
    data = tmp_path / "clips"
    _write_clips(data, 1.0)
    run = tmp_path / "run"
    assert main(["--model", str(small), "--out", str(run), "--data", str(data), *FAST]) == 2
    err = capsys.readouterr().err
    assert "more than the model's 40 positions" in err and "fit in about" in err
    assert not run.exists()


def test_clip_without_soundtrack_under_an_audio_question(omni: Path, tmp_path: Path,
                                                         capsys) -> None:
    data = tmp_path / "clips"
    _write_clips(data, 1.0, audio=False)
    run = tmp_path / "run"
    assert main(["--model", str(omni), "--out", str(run), "--data", str(data), *FAST]) == 2
    err = capsys.readouterr().err
    assert "clips.jsonl line 1, field 'audio'" in err and not run.exists()


def test_a_video_without_soundtrack_cannot_take_an_audio_question() -> None:
    """A video file without an audio stream, and no audio file: refused by name."""
    import numpy as np

    from modprobe.adapters.media import MediaError, Video
    from modprobe.data.clips_items import ClipItem
    from modprobe.study.mma import MmaConfig, check_clip_inputs

    silent = Video(np.zeros((2, 8, 8, 3), np.uint8), 1.0)
    item = ClipItem("c7:audio", "audio", silent, "circle", "hum", ("hum", "bell"), "c7")
    with pytest.raises(MediaError, match="clip 'c7' has no soundtrack"):
        check_clip_inputs(None, [item], ["aligned"], MmaConfig("m", None, "o"))


def _video_extra() -> bool:
    from modprobe.adapters.media import MediaError, require_video

    try:
        require_video()
    except MediaError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _video_extra(), reason="needs the video extra (pip install "
                    "'modprobe[video]'): torchvision and av")
def test_video_run_interleaves_soundtracks(omni: Path, tmp_path: Path, monkeypatch) -> None:
    from transformers import Qwen2_5OmniProcessor

    # the class's frame-size defaults are the 7B model's (thousands of tokens per frame)
    monkeypatch.setattr(Qwen2_5OmniProcessor, "videos_kwargs", {})
    run = tmp_path / "run"
    args = [a if a != "image" else "video" for a in FAST]
    assert main(["--model", str(omni), "--out", str(run), *args, "--clips", "4",
                 "--conditions", "aligned,misaligned"]) == 0
    spans = pd.read_csv(run / "attention.csv").groupby("span")["mass"].max()
    assert spans["video"] > 0 and spans["audio"] > 0 and spans["image"] == 0
