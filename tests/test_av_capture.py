"""Audio (and video) prompts on a tiny random Qwen2.5-Omni thinker with its real processor.

The capture of a padded batch is compared with the model run as a user runs it: each
prompt alone through the processor's own ``apply_chat_template(tokenize=True)``, its full
output fed to the eager forward with ``output_attentions`` (modprobe.capture.reference).
Video needs the video extra (torchvision and PyAV); without it those tests are skipped
and the refusal is tested instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modprobe
from modprobe.adapters.media import Audio, MediaError, Video, write_wav
from modprobe.capture import capture
from modprobe.capture.reference import sharpen_attention, user_reference
from modprobe.testing.families import build_family, load_family
from modprobe.testing.images import noise_image

TOL = 1e-5
RATE = 16000
FAMILY = "qwen2_5_omni_thinker"


def tone(freq: float, seconds: float, seed: int = 0) -> Audio:
    """A noisy sine at the feature extractor's rate."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).normal(0, 0.05, t.size)
    return Audio((0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), RATE)


def _prompts(freq: float = 440.0) -> list[modprobe.Prompt]:
    """Audio with a context, image with audio, and text only: lengths differ (padding)."""
    return [
        modprobe.Prompt("What sound is it ?", context="The sound is red .", audio=[tone(freq, 1.0)]),
        modprobe.Prompt("What color is it ?", images=[noise_image(1, (32, 32))],
                        audio=[tone(freq * 1.5, 0.6, seed=1)]),
        modprobe.Prompt("What color is it ?", context="It is red ."),
    ]


@pytest.fixture(scope="module")
def omni(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    folder = build_family(FAMILY, tmp_path_factory.mktemp("omni"))
    return tuple(sharpen_attention(load_family(FAMILY, kernel, folder=folder))
                 for kernel in ("sdpa", "eager"))


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def test_audio_spans_are_the_processors_token_ids(omni) -> None:
    lm, _ = omni
    batch = lm.encode(_prompts())
    spans = lm.spans(batch)
    ids = {"audio": lm.config.audio_token_id, "image": lm.config.image_token_id}
    for name, token in ids.items():
        assert torch.equal(spans.mask(name), batch["input_ids"] == token), name
    counts = spans.counts()
    assert counts["audio"][:2] == [25, 15] and counts["audio"][2] == 0  # 25 tokens a second
    assert counts["image"][1] > 0 == counts["image"][0]
    assert counts["context"][0] > 0 and counts["context"][2] > 0
    assert bool((batch["attention_mask"] == 0).any()), "the batch should need padding"


def test_capture_equals_the_users_forward(omni) -> None:
    lm, eager = omni
    prompts = _prompts()
    batch = lm.encode(prompts)
    cap = capture(lm, batch, keep_lens_logits=True)
    with torch.no_grad():
        ref, ids = user_reference(eager, prompts)
    for row, row_ids in enumerate(ids):
        mine = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        assert torch.equal(mine, row_ids), f"row {row}: token ids differ from the processor's"
    assert _maxdiff(cap.final_logits, ref.final_logits) <= TOL, "final logits != user's forward"
    assert _maxdiff(cap.lens_logits[:, -1], cap.final_logits) <= TOL, "lens != logits"
    assert _maxdiff(cap.lens_logits, ref.lens_logits) <= TOL
    mass = cap.attention_mass
    assert _maxdiff(mass, ref.attention_mass) <= TOL, "SDPA mass != eager mass"
    audio = modprobe.spans.SPAN_NAMES.index("audio")
    assert float(mass[:2, ..., audio].max()) > 1e-3, "the audio gets attention somewhere"
    assert float(mass[2, ..., audio].abs().max()) == 0.0, "no audio, no audio mass"
    # the audio reaches the language model: another sound, other logits
    other = capture(lm, lm.encode(_prompts(freq=900.0)), lens=False, attention=False)
    assert _maxdiff(other.final_logits[:2], cap.final_logits[:2]) > 1e-4
    assert _maxdiff(other.final_logits[2], cap.final_logits[2]) <= TOL


def test_batch_equals_rows_alone(omni) -> None:
    lm, _ = omni
    prompts = _prompts()
    together = capture(lm, prompts, candidates=["red", "blue"])
    for i, prompt in enumerate(prompts):
        alone = capture(lm, [prompt], candidates=["red", "blue"])
        for name in ("final_logits", "lens_candidate_logits", "attention_mass"):
            diff = _maxdiff(getattr(together, name)[i], getattr(alone, name)[0])
            assert diff <= TOL, f"row {i} {name} differs by {diff:.2e} when batched"


def test_audio_inputs_and_refusals(omni, tmp_path: Path) -> None:
    lm, _ = omni
    clip = tone(300.0, 0.5)
    write_wav(tmp_path / "a.wav", clip)
    from_file = modprobe.Prompt("What sound is it ?", audio=[str(tmp_path / "a.wav")])
    assert from_file.modalities == {"audio"}
    assert np.abs(from_file.audio[0].waveform - clip.waveform).max() < 1e-4  # 16-bit PCM
    pair = modprobe.Prompt("What sound is it ?", audio=[(clip.waveform, RATE)])
    assert pair.audio[0].sampling_rate == RATE
    with pytest.raises(MediaError, match="8000 Hz.*takes 16000 Hz; resample"):
        lm.encode([modprobe.Prompt("What sound ?", audio=[Audio(clip.waveform, 8000)])])
    with pytest.raises(MediaError, match="longer than the 30 s"):
        lm.encode([modprobe.Prompt("What sound ?", audio=[tone(300.0, 31.0)])])
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00not a wav")
    with pytest.raises(MediaError, match="bad.wav: cannot read audio"):
        modprobe.Prompt("What sound ?", audio=[str(tmp_path / "bad.wav")])
    with pytest.raises(MediaError, match="no such audio file"):
        modprobe.Prompt("What sound ?", audio=[str(tmp_path / "missing.wav")])
    with pytest.raises(MediaError, match=r"audio must be a list.*audio=\[\.\.\.\]"):
        modprobe.Prompt("What sound ?", audio=clip)
    with pytest.raises(MediaError, match="1-D"):
        Audio(np.zeros((2, 10), np.float32), RATE)


def test_conditions_are_modality_sets() -> None:
    from modprobe.adapters.conditions import condition_modalities

    assert condition_modalities("multi") == {"image", "context"}
    assert condition_modalities({"video", "audio"}) == {"video", "audio"}
    with pytest.raises(ValueError, match="unknown modalities"):
        condition_modalities({"smell"})
    clip = tone(300.0, 0.5)
    prompt = modprobe.Prompt.for_condition({"audio", "context"}, "What sound ?", "It hums .",
                                           None, audio=[clip])
    assert prompt.modalities == {"audio", "context"} and prompt.context == "It hums ."
    assert modprobe.Prompt.for_condition("text", "Q ?", "C .", None).modalities == {"context"}
    with pytest.raises(ValueError, match="needs audio"):
        modprobe.Prompt.for_condition({"audio"}, "What sound ?", None, None)


def _has_video_extra() -> bool:
    try:
        from modprobe.adapters.media import require_video

        require_video()
    except MediaError:
        return False
    return True


@pytest.mark.skipif(_has_video_extra(), reason="the video extra is installed")
def test_video_without_the_extra_names_the_install_command(omni) -> None:
    lm, _ = omni
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(MediaError, match=r"install the video extra: pip install 'modprobe\[video\]'"):
        lm.encode([modprobe.Prompt("What shape ?", videos=[Video(frames, 2.0)])])


needs_video = pytest.mark.skipif(not _has_video_extra(), reason="needs the video extra "
                                 "(pip install 'modprobe[video]'): torchvision and av")


def _with_video_processor(loaded):
    """The loaded model, its processor using its own video processor's frame sizes.

    Qwen2.5-Omni's processor class carries the 7B model's frame sizes as defaults, which
    would turn a 32x32 test frame into thousands of tokens.
    """
    loaded.processor.videos_kwargs = {}
    return loaded


def _clip(seed: int, seconds: float, freq: float, with_audio: bool = True) -> Video:
    frames = np.random.default_rng(seed).integers(0, 256, (int(2 * seconds), 32, 32, 3),
                                                  dtype=np.uint8)
    return Video(frames, 2.0, tone(freq, seconds, seed) if with_audio else None)


@needs_video
def test_video_with_soundtrack_is_exact(omni) -> None:
    """Interleaved 2-second chunks of video and audio tokens: spans by token id, capture
    equal to the processor's own output run alone through the eager forward."""
    from modprobe.capture.reference import eager_reference, user_spans

    lm, eager = (_with_video_processor(m) for m in omni)
    prompts = [modprobe.Prompt("What shape is it ?", context="It is red .",
                               videos=[_clip(0, 6.0, 440.0)]),
               modprobe.Prompt("What sound is it ?", videos=[_clip(1, 2.0, 300.0)]),
               modprobe.Prompt("What color is it ?", context="It is red .")]
    batch = lm.encode(prompts)
    spans = lm.spans(batch)
    for name, token in (("video", lm.config.video_token_id), ("audio", lm.config.audio_token_id)):
        assert torch.equal(spans.mask(name), batch["input_ids"] == token), name
    runs = [n for n, _, _ in spans.ranges(0) if n in ("video", "audio")]
    assert runs[:4] == ["video", "audio", "video", "audio"], "chunks interleave"
    assert spans.counts()["audio"] == [150, 50, 0]
    cap = capture(lm, batch, keep_lens_logits=True)
    for row, prompt in enumerate(prompts):
        rendered = lm.processor.apply_chat_template(
            lm.adapter.messages(prompt), tokenize=False, add_generation_prompt=True)
        kwargs = {"text": [rendered], "return_tensors": "pt"}
        if prompt.videos:
            kwargs.update(videos=[v.frames for v in prompt.videos], fps=prompt.videos[0].fps)
        tracks = [v.audio.waveform for v in prompt.videos if v.audio is not None]
        if tracks:
            kwargs.update(audio=tracks, audio_from_video_indices=[0], load_audio_from_video=True)
        with torch.no_grad():
            inputs = dict(eager.processor(**kwargs, sampling_rate=RATE))
            if tracks:  # as Qwen2.5-Omni's model card runs a video with its soundtrack
                inputs["use_audio_in_video"] = True
            row_spans = user_spans(eager, prompt, inputs)
            ref = eager_reference(eager, inputs, row_spans, row_spans.answer_positions())
        mine = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        assert torch.equal(mine, inputs["input_ids"][0]), f"row {row}: ids differ"
        assert _maxdiff(cap.final_logits[row], ref.final_logits[0]) <= TOL
        assert _maxdiff(cap.lens_logits[row], ref.lens_logits[0]) <= TOL
        assert _maxdiff(cap.attention_mass[row], ref.attention_mass[0]) <= TOL
    alone = capture(lm, [prompts[0]])
    assert _maxdiff(alone.attention_mass[0], cap.attention_mass[0]) <= TOL
    with pytest.raises(MediaError, match="one use_audio_in_video flag"):
        lm.encode([prompts[0], modprobe.Prompt("What sound ?", audio=[tone(500.0, 1.0)])])


@needs_video
def test_video_file_round_trip(tmp_path: Path) -> None:
    from modprobe.data.clips import write_clip

    clip = _clip(3, 2.0, 440.0)
    path = tmp_path / "clip.mp4"
    write_clip(path, clip)
    back = modprobe.Prompt("What shape ?", videos=[str(path)]).videos[0]
    assert back.frames.shape == clip.frames.shape and back.fps == clip.fps
    assert back.audio is not None and abs(back.audio.seconds - 2.0) < 0.1
