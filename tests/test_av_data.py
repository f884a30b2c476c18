"""Synthetic clips, the clip folder validator, clip questions and the MMA conditions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modprobe.data.clips import AUDIO_CLASSES, VISUAL_CLASSES, generate_clips, load_clips
from modprobe.data.clips_items import ClipItem, clip_items
from modprobe.data.schema import DatasetError
from modprobe.perturb import PerturbationError
from modprobe.perturb.av import AV_CONDITIONS, applicable_conditions, av_condition


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "c"
    generate_clips(out, n=8, seed=3)
    return out


@pytest.fixture(scope="module")
def items(folder: Path) -> list[ClipItem]:
    return clip_items(folder, load_clips(folder))


def test_generator_is_seeded_and_covers_the_classes(folder: Path, tmp_path: Path) -> None:
    clips = load_clips(folder)
    assert {c.visual_class for c in clips} == set(VISUAL_CLASSES)
    assert {c.audio_class for c in clips} == set(AUDIO_CLASSES)
    again = tmp_path / "again"
    generate_clips(again, n=8, seed=3)
    for name in ("clips.jsonl", "clips/c005.wav", "clips/c005/frame_003.png"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name
    other = tmp_path / "other"
    generate_clips(other, n=8, seed=4)
    assert (other / "clips/c005.wav").read_bytes() != (folder / "clips/c005.wav").read_bytes()
    with pytest.raises(FileExistsError, match="not empty"):
        generate_clips(again, n=2)


def test_classes_are_told_apart_by_their_signal(items: list[ClipItem]) -> None:
    """The shape's colour and the sound's pitch identify the classes (the clips are
    learnable): mean colour and dominant frequency differ between classes."""
    for item in items:
        frames, sound = item.video.frames, item.video.audio
        assert sound is not None and abs(sound.seconds - 2.0) < 1e-6
        colour = np.array(VISUAL_CLASSES[item.visual_class])
        assert (np.abs(frames.astype(int) - colour).sum(-1) < 30).mean() > 0.05
        spectrum = np.abs(np.fft.rfft(sound.waveform))
        peak = np.fft.rfftfreq(sound.waveform.size, 1 / sound.sampling_rate)[spectrum.argmax()]
        base = AUDIO_CLASSES[item.audio_class][0]
        assert any(abs(peak - k * base) < 0.2 * k * base for k in (1, 2, 3, 5.4)), item.id


def test_validator_reports_every_problem(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    lines = [{"id": "a", "video": "missing.mp4", "visual_class": "circle", "audio_class": "hum"},
             {"id": "b", "video": "clips", "visual_class": 3, "audio_class": "hum"},
             {"id": "a", "video": "missing.mp4", "visual_class": "square", "audio_class": "bell",
              "fps": -1.0}]
    (bad / "clips").mkdir()
    (bad / "clips.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    with pytest.raises(DatasetError) as err:
        load_clips(bad)
    text = str(err.value)
    for part in ("line 1, field 'video': no such file", "line 2, field 'visual_class': must be",
                 "line 3, field 'fps'", "duplicate id 'a'", "line 4: not valid JSON",
                 "docs/mma.md"):
        assert part in text, part
    with pytest.raises(DatasetError, match="needs clips.jsonl"):
        load_clips(tmp_path)


def test_conditions_are_pure_and_keep_their_promises(items: list[ClipItem]) -> None:
    visual = next(i for i in items if i.ask == "visual")
    audio = next(i for i in items if i.ask == "audio" and i.cluster == visual.cluster)
    for name in AV_CONDITIONS:
        for item in (visual, audio):
            if name not in applicable_conditions(item):
                continue
            a = av_condition(item, name, seed=1, pool=items)
            b = av_condition(item, name, seed=1, pool=items)
            assert a.condition == name and a.prompt().text == b.prompt().text
            assert np.array_equal(a.video.audio.waveform, b.video.audio.waveform)
    swapped = av_condition(audio, "misaligned", seed=0, pool=items)
    assert swapped.audio_class != audio.audio_class and swapped.gold == swapped.audio_class
    assert np.array_equal(swapped.video.frames, audio.video.frames)
    assert swapped.video.audio.waveform.size == audio.video.audio.waveform.size
    seen = {av_condition(audio, "misaligned", seed=s, pool=items).audio_class for s in range(20)}
    assert len(seen) > 1, "the partner is drawn per seed"
    assert av_condition(visual, "misaligned", seed=0, pool=items).gold == visual.gold
    silent = av_condition(visual, "audio_removed")
    assert not silent.video.audio.waveform.any() and silent.gold == visual.gold
    assert not av_condition(audio, "frames_zeroed").video.frames.any()
    for s in range(20):
        cap = av_condition(audio, "caption", seed=s)
        assert cap.caption.startswith("Video_caption: ") and audio.gold not in cap.caption.lower()
        assert cap.prompt().context == cap.caption
    long = av_condition(visual, "long_text", seed=0, letters=500)
    assert len(long.suffix) == 500 and long.suffix.isalpha()
    assert long.prompt().question.endswith(long.suffix)
    assert len(av_condition(visual, "long_text").suffix) == 10_000


def test_conditions_refuse_what_they_cannot_do(items: list[ClipItem]) -> None:
    visual = next(i for i in items if i.ask == "visual")
    audio = next(i for i in items if i.ask == "audio")
    with pytest.raises(PerturbationError, match="removes the audio"):
        av_condition(audio, "audio_removed")
    with pytest.raises(PerturbationError, match="removes the visual"):
        av_condition(visual, "frames_zeroed")
    with pytest.raises(PerturbationError, match="needs a pool"):
        av_condition(visual, "misaligned")
    with pytest.raises(PerturbationError, match="unknown MMA condition"):
        av_condition(visual, "shuffled")
    with pytest.raises(PerturbationError, match="has no option 'size'"):
        av_condition(visual, "caption", size=3)


def test_item_reads_answers_and_prompts(items: list[ClipItem]) -> None:
    item = items[0]
    assert item.read(item.gold) == item.gold
    assert item.read("nothing of that") == "unreadable"
    prompt = item.prompt()
    assert prompt.modalities == {"video", "audio"}
    assert all(o in prompt.question for o in item.options)


def test_partner_clips_pair_each_shape_with_its_sound_and_swaps_conflict(tmp_path: Path) -> None:
    from modprobe.data.clips import PARTNER_SOUNDS

    clips = generate_clips(tmp_path / "p", n=8, seed=0, pairing="partner")
    assert [c.audio_class for c in clips] == [PARTNER_SOUNDS[c.visual_class] for c in clips]
    assert len(set(PARTNER_SOUNDS.values())) == len(PARTNER_SOUNDS)  # one sound per shape
    items = clip_items(tmp_path / "p", load_clips(tmp_path / "p"))
    for item in items:
        swapped = av_condition(item, "misaligned", seed=1, pool=items)
        assert PARTNER_SOUNDS[swapped.visual_class] != swapped.audio_class
    with pytest.raises(ValueError, match="pairing"):
        generate_clips(tmp_path / "q", n=2, pairing="matched")
