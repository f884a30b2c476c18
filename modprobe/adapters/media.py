"""Audio and video inputs of a :class:`~modprobe.adapters.prompt.Prompt`.

An :class:`Audio` is a mono waveform with its sample rate; a :class:`Video` is a stack of
RGB frames with its frame rate, and optionally the clip's own soundtrack. Both can be read
from files: audio with ``soundfile`` (any format libsndfile reads) or, without it, WAV
files with the standard library's ``wave``; video with PyAV (``av``), part of the video
extra (``pip install 'modprobe[video]'``), which also brings the torchvision that
transformers' video processors need.

Checks that need the processor (the feature extractor's sample rate, the longest clip it
takes) happen in :func:`check_audio` when a prompt is encoded, before the model runs.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modprobe.errors import ModprobeError

#: The command that installs what video prompts need (torchvision and PyAV).
VIDEO_INSTALL = "pip install 'modprobe[video]'"


class MediaError(ModprobeError, ValueError):
    """An audio or video input is unreadable, malformed or does not fit the processor."""


@dataclass(frozen=True)
class Audio:
    """A mono waveform.

    Attributes:
        waveform: `samples` float32 in [-1, 1].
        sampling_rate: Samples per second.
    """

    waveform: np.ndarray
    sampling_rate: int

    def __post_init__(self) -> None:
        """Check the waveform (mono, non-empty, numeric) and the rate (positive)."""
        wav = np.asarray(self.waveform)
        if wav.ndim != 1 or wav.size == 0 or not np.issubdtype(wav.dtype, np.number):
            raise MediaError(f"an audio waveform must be a non-empty 1-D numeric array (mono), "
                             f"got shape {wav.shape} of {wav.dtype}; average the channels")
        if not np.isfinite(wav).all():
            raise MediaError("the audio waveform holds NaN or infinite samples")
        if not isinstance(self.sampling_rate, (int, np.integer)) or self.sampling_rate <= 0:
            raise MediaError(f"an audio sampling_rate must be a positive integer, got "
                             f"{self.sampling_rate!r}")
        object.__setattr__(self, "waveform", wav.astype(np.float32, copy=False))
        object.__setattr__(self, "sampling_rate", int(self.sampling_rate))

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.waveform.size / self.sampling_rate


@dataclass(frozen=True)
class Video:
    """RGB frames, optionally with the clip's soundtrack.

    Attributes:
        frames: `frames height width 3` uint8.
        fps: Frames per second of ``frames``.
        audio: The soundtrack played with the frames (interleaved with the video tokens
            by Qwen2.5-Omni's processor), or None for a silent clip.
    """

    frames: np.ndarray
    fps: float
    audio: Audio | None = None

    def __post_init__(self) -> None:
        """Check the frames (`frames height width 3` uint8) and the fps (positive)."""
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise MediaError(f"video frames must be a `frames height width 3` array, got shape "
                             f"{frames.shape}")
        if frames.dtype != np.uint8:
            raise MediaError(f"video frames must be uint8 (0..255), got {frames.dtype}")
        if not float(self.fps) > 0:
            raise MediaError(f"a video fps must be positive, got {self.fps!r}")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.frames.shape[0] / self.fps


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


def read_audio(path: str | os.PathLike[str]) -> Audio:
    """Read an audio file as mono float32 (channels averaged).

    Raises:
        MediaError: if the file is missing, unreadable or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such audio file")
    try:
        import soundfile
    except ImportError:
        soundfile = None
    try:
        if soundfile is not None:
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            return Audio(data.mean(axis=1), int(rate))
        return _read_wav(path)
    except MediaError:
        raise
    except (RuntimeError, OSError, EOFError, ValueError, wave.Error) as err:  # one line
        raise MediaError(f"{path}: cannot read audio ({type(err).__name__}: {err})") from None


def _read_wav(path: Path) -> Audio:
    """A PCM WAV file through the standard library (when soundfile is not installed)."""
    with wave.open(str(path), "rb") as f:
        width, channels, rate, n = f.getsampwidth(), f.getnchannels(), f.getframerate(), f.getnframes()
        raw = f.readframes(n)
    if width != 2:
        raise MediaError(f"{path}: {8 * width}-bit WAV needs soundfile (pip install soundfile); "
                         "the standard library reader takes 16-bit PCM")
    if len(raw) != n * width * channels:
        raise MediaError(f"{path}: truncated WAV ({len(raw)} of {n * width * channels} bytes)")
    data = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0
    return Audio(data.mean(axis=1), rate)


def write_wav(path: str | os.PathLike[str], audio: Audio) -> None:
    """Write a 16-bit PCM mono WAV file (standard library only).

    Args:
        path: The file to write.
        audio: The clip (float waveform in -1..1; clipped beyond).
    """
    pcm = np.clip(np.round(audio.waveform * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(audio.sampling_rate)
        f.writeframes(pcm.tobytes())


def require_video() -> None:
    """Fail with the install command when the video extra (torchvision, PyAV) is missing."""
    from transformers.utils import is_torchvision_available

    missing = [name for name, ok in (("torchvision", is_torchvision_available()),
                                     ("av", _importable("av"))) if not ok]
    if missing:
        raise MediaError(f"video needs {' and '.join(missing)}, which the default install leaves "
                         f"out; install the video extra: {VIDEO_INSTALL}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def read_video(path: str | os.PathLike[str]) -> Video:
    """Decode a video file (frames and, when it has one, its first audio stream) with PyAV.

    Raises:
        MediaError: if the video extra is missing or the file cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such video file")
    require_video()
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0) or 25.0
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        audio = None
        with av.open(str(path)) as container:
            if container.streams.audio:
                chunks = [f.to_ndarray() for f in container.decode(container.streams.audio[0])]
                rate = container.streams.audio[0].rate
                data = np.concatenate([c.reshape(c.shape[0], -1) if c.ndim > 1 else c[None]
                                       for c in chunks], axis=1)
                # the encoder's padding can outlast the frames: keep the clip's duration
                keep = round(frames.shape[0] / fps * rate)
                audio = Audio(data.astype(np.float32).mean(axis=0)[:keep], int(rate))
    except MediaError:
        raise
    except (RuntimeError, OSError, EOFError, ValueError, IndexError) as err:
        raise MediaError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from None
    return Video(frames, fps, audio)


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
