"""Audio and video clips: :class:`Audio`, :class:`Video` and reading their files.

An :class:`Audio` is a mono waveform with its sample rate; a :class:`Video` is a stack of
RGB frames with its frame rate, and optionally the clip's own soundtrack. Both can be read
from files: audio with ``soundfile`` (any format libsndfile reads) or, without it, WAV
files with the standard library's ``wave``; video with PyAV (``av``), part of the video
extra (``pip install 'modprobe[video]'``), which also brings the torchvision that
transformers' video processors need.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path

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
