"""Audio and video inputs of a :class:`~modprobe.adapters.prompt.Prompt`.

The clips themselves (:class:`Audio`, :class:`Video`) and their files live in
:mod:`~modprobe.adapters.clips` and are re-exported here; this module turns a prompt's
media fields into clips and a batch's clips into the processor's arguments.

Checks that need the processor (the feature extractor's sample rate, the longest clip it
takes) happen in :func:`check_audio` when a prompt is encoded, before the model runs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from modprobe.adapters.clips import (
    VIDEO_INSTALL,
    Audio,
    MediaError,
    Video,
    read_audio,
    read_video,
    require_video,
    write_wav,
)

__all__ = [
    "VIDEO_INSTALL", "Audio", "MediaError", "Video", "as_audio", "as_list", "as_video",
    "check_audio", "check_media_placeholders", "forward_flags", "media_kwargs", "read_audio",
    "read_video", "require_video", "video_kwargs", "write_wav",
]



def as_list(value: Any, name: str) -> list[Any]:
    """A prompt's media field as a list: ``None`` -> [], a list -> the list.

    Anything else is refused, as a single image is: ``audio=[clip]``, not ``audio=clip``.

    Args:
        value: What the prompt was given for the field.
        name: The field's name (``"videos"``, ``"audio"``), quoted in the error.

    Returns:
        The items, as a new list.

    Raises:
        MediaError: naming the field and the fix.
    """
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise MediaError(f"Prompt {name} must be a list, got a {type(value).__name__}: write "
                     f"{name}=[...] (one entry per clip; [] for none)")


def as_audio(value: Any) -> Audio:
    """An :class:`Audio` from an Audio, a ``(waveform, sampling_rate)`` pair or a file path."""
    if isinstance(value, Audio):
        return value
    if isinstance(value, (str, os.PathLike)):
        return read_audio(value)
    if isinstance(value, tuple) and len(value) == 2:
        return Audio(*value)
    raise MediaError(f"audio must be an Audio, a (waveform, sampling_rate) pair or a file path, "
                     f"not {type(value).__name__}")


def as_video(value: Any) -> Video:
    """A :class:`Video` from a Video, a ``(frames, fps)`` pair or a file path."""
    if isinstance(value, Video):
        return value
    if isinstance(value, (str, os.PathLike)):
        return read_video(value)
    if isinstance(value, tuple) and len(value) == 2:
        return Video(*value)
    raise MediaError(f"video must be a Video, a (frames, fps) pair or a file path, "
                     f"not {type(value).__name__}")


def check_audio(processor: Any, audio: Audio, where: str) -> None:
    """Check that the processor's feature extractor takes this audio as it is.

    Args:
        processor: The model's processor.
        audio: The clip.
        where: Where the clip is (``"prompt 0 audio[1]"``), quoted in the error.

    Raises:
        MediaError: on a sample rate other than the extractor's (modprobe does not
            resample: resample with librosa or torchaudio first), or a clip longer than the
            extractor's window (Whisper's: 30 s), whose end it would cut silently.
    """
    extractor = getattr(processor, "feature_extractor", None)
    if extractor is None:
        raise MediaError(f"{where}: the processor has no audio feature extractor, so this "
                         "model cannot take audio")
    rate = int(getattr(extractor, "sampling_rate", audio.sampling_rate))
    if audio.sampling_rate != rate:
        raise MediaError(f"{where}: audio at {audio.sampling_rate} Hz, but the feature extractor "
                         f"takes {rate} Hz; resample it first (e.g. librosa.resample)")
    limit = getattr(extractor, "n_samples", None)
    if limit and audio.waveform.size > limit:
        raise MediaError(f"{where}: audio of {audio.seconds:.1f} s is longer than the "
                         f"{limit / rate:.0f} s the feature extractor takes; cut it")


def _placeholder(processor: Any, name: str) -> str | None:
    token = getattr(processor, f"{name}_token", None)
    return getattr(token, "content", token)  # AddedToken -> str


def check_media_placeholders(processor: Any, prompts: list[Any], texts: list[str]) -> None:
    """Fail clearly when a prompt's videos or audio clips and their placeholders differ.

    The chat template writes one placeholder per clip; a mismatch means the question or
    context holds placeholders of its own, or the processor takes no such input.

    Args:
        processor: The model's processor (its placeholder tokens).
        prompts: The batch's prompts.
        texts: Their rendered texts, in the same order.

    Raises:
        MediaError: a prompt's clips and placeholders differ in number, or the processor
            has no placeholder for a medium the prompt holds.
    """
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        for name, items in (("video", prompt.videos), ("audio", prompt.audio)):
            if not items:
                continue
            token = _placeholder(processor, name)
            if token is None:
                raise MediaError(f"prompt {i} has {name} but the processor has no {name} "
                                 "placeholder token: this model does not take " + name)
            found = text.count(token)
            if found != len(items):
                raise MediaError(
                    f"prompt {i} has {len(items)} {name} clip(s) but its text holds {found} "
                    f"{name} placeholder(s) {token!r}; the chat template writes one per clip "
                    "(do not write placeholders into the question or context yourself)")


def media_kwargs(processor: Any, prompts: list[Any]) -> dict[str, Any]:
    """The processor's audio and video arguments for a batch (empty without media).

    Audio clips go as one flat list in prompt order (the processor fills the audio
    placeholders of all rows in order), at the feature extractor's sample rate (checked).
    Videos need the video extra; their soundtracks go in with them
    (``load_audio_from_video``), each slot's source given by ``audio_from_video_indices``.

    Args:
        processor: The model's processor.
        prompts: The batch's prompts.

    Returns:
        Keyword arguments for the processor call (``audio``, ``videos`` and their options).

    Raises:
        MediaError: a clip the feature extractor cannot take, or videos without a video
            processor.
    """
    out: dict[str, Any] = {}
    audio: list[np.ndarray] = []
    for i, prompt in enumerate(prompts):
        for j, clip in enumerate(prompt.audio):
            check_audio(processor, clip, f"prompt {i} audio[{j}]")
            audio.append(clip.waveform)
    videos = [v for p in prompts for v in p.videos]
    if videos:
        require_video()
        if getattr(processor, "video_processor", None) is None:
            raise MediaError("the processor has no video processor; load it with the video "
                             f"extra installed ({VIDEO_INSTALL})")
        out.update(video_kwargs(processor, prompts, audio))
    elif audio:
        out["audio"] = audio
    if audio or videos:
        rate = getattr(getattr(processor, "feature_extractor", None), "sampling_rate", None)
        if rate is not None and (audio or any(v.audio for v in videos)):
            out["sampling_rate"] = rate
    return out


def video_kwargs(processor: Any, prompts: list[Any], standalone: list[np.ndarray]) -> dict[str, Any]:
    """Videos (frames at their fps) and the audio slots they share with standalone clips.

    Within one prompt the chat message holds videos before audio clips, so the audio
    slots are, per prompt, its videos' soundtracks then its own clips.

    Args:
        processor: The model's processor.
        prompts: The batch's prompts.
        standalone: The waveforms of the prompts' own audio clips, in prompt order.

    Returns:
        The processor's video arguments (frames, fps) and the audio slots with their
        sources.

    Raises:
        MediaError: a batch mixing video soundtracks with silent videos or separate clips,
            or videos of different frame rates.
    """
    tracks = [v.audio is not None for p in prompts for v in p.videos]
    if any(tracks) and (not all(tracks) or any(p.audio for p in prompts)):
        raise MediaError("a batch with video soundtracks cannot also hold silent videos or "
                         "separate audio clips: Qwen2.5-Omni's forward takes one "
                         "use_audio_in_video flag for all its rows; encode them in separate "
                         "batches (or give the silent videos a silent soundtrack)")
    videos, fps, audio, sources = [], [], [], []
    standalone_iter = iter(standalone)
    for i, prompt in enumerate(prompts):
        for j, video in enumerate(prompt.videos):
            videos.append(video.frames)
            fps.append(video.fps)
            if video.audio is not None:
                check_audio(processor, video.audio, f"prompt {i} videos[{j}] soundtrack")
                audio.append(video.audio.waveform)
                sources.append(len(videos) - 1)
        for _ in prompt.audio:
            audio.append(next(standalone_iter))
            sources.append(None)
    if len(set(fps)) > 1:
        raise MediaError(f"the videos of one batch must share a frame rate (the processor takes "
                         f"one fps), got {sorted(set(fps))}; resample the frames or encode "
                         "them in separate batches")
    out: dict[str, Any] = {"videos": videos, "fps": fps[0]}
    if audio:
        out.update(audio=audio, audio_from_video_indices=sources,
                   load_audio_from_video=any(s is not None for s in sources))
    return out


def forward_flags(prompts: list[Any]) -> dict[str, Any]:
    """Model inputs the processor does not return: ``use_audio_in_video`` for soundtracks."""
    if any(v.audio is not None for p in prompts for v in p.videos):
        return {"use_audio_in_video": True}
    return {}
