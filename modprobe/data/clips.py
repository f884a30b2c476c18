"""Audio-visual clips for the MMA study: a seeded synthetic generator, the folder layout
and its validator.

A clip folder holds ``clips.jsonl``, one JSON object per clip, and the files it names::

    {"id": "c000", "video": "clips/c000", "fps": 4.0, "audio": "clips/c000.wav",
     "visual_class": "circle", "audio_class": "whistle", "cluster": "c000"}

``video`` is either a video file (``.mp4`` ..., read with PyAV from the video extra; its
own soundtrack is used when ``audio`` is absent) or a folder of frames
``frame_000.png, frame_001.png, ...`` played at ``fps`` (required for frame folders).
``audio`` is a WAV file (any format ``soundfile`` reads when it is installed). Users'
own clips replace these files; ``visual_class`` and ``audio_class`` are the answers to
the visual and the audio question, and the options of a question are the classes of
that kind found in the folder. See docs/mma.md.

The synthetic clips show one coloured shape moving on a grey background (the visual
class: the shape, each drawn in its own colour) with a sound of one family (the audio
class: pitch and timbre). Every clip is a pure function of ``(seed, index)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from modprobe.adapters.media import Audio, MediaError, Video, read_audio, read_video, write_wav
from modprobe.data.schema import (
    _TYPE_NAMES,
    DatasetError,
    FieldError,
    _describe,
    _type_ok,
    parse_jsonl,
)
from modprobe.data.tasks import seeded_rng
from modprobe.io import write_bytes

#: Visual classes: shape name -> RGB colour it is drawn in.
VISUAL_CLASSES: dict[str, tuple[int, int, int]] = {
    "circle": (220, 40, 40), "square": (40, 90, 220), "triangle": (40, 180, 60),
    "cross": (230, 200, 30)}
#: Audio classes: name -> (base frequency in Hz, timbre).
AUDIO_CLASSES: dict[str, tuple[float, str]] = {
    "hum": (110.0, "saw"), "whistle": (1800.0, "sine"), "bell": (660.0, "bell"),
    "drum": (70.0, "drum")}
#: Each shape's partner sound: the pairing of ``pairing="partner"`` clips, where sound and
#: picture agree the way they do in real videos (a shape always makes its own sound).
PARTNER_SOUNDS: dict[str, str] = dict(zip(VISUAL_CLASSES, AUDIO_CLASSES, strict=True))
CLIPS_FILE = "clips.jsonl"
SCHEMA_DOC = "docs/mma.md, Clip folders"
REQUIRED: dict[str, type] = {"id": str, "video": str, "visual_class": str, "audio_class": str}
OPTIONAL: dict[str, type] = {"audio": str, "fps": float, "cluster": str}


@dataclass(frozen=True)
class Clip:
    """One line of ``clips.jsonl`` (paths relative to the folder, POSIX separators)."""

    id: str
    video: str
    visual_class: str
    audio_class: str
    audio: str | None = None
    fps: float | None = None
    cluster: str | None = None

    def load(self, root: str | Path) -> Video:
        """The clip's frames with its soundtrack (the ``audio`` file, else the video's)."""
        root = Path(root)
        path = root / self.video
        if path.is_dir():
            names = sorted(path.glob("frame_*.png"))
            frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in names])
            video = Video(frames, float(self.fps or 0) or 1.0)
        else:
            video = read_video(path)
        audio = read_audio(root / self.audio) if self.audio else video.audio
        return Video(video.frames, video.fps, audio)


def render_frames(visual_class: str, rng: np.random.Generator, n_frames: int,
                  size: int) -> np.ndarray:
    """`frames size size 3` uint8: the class's shape moving in a straight line."""
    color = VISUAL_CLASSES[visual_class]
    radius = size * rng.uniform(0.18, 0.26)
    start = rng.uniform(radius, size - radius, 2)
    end = rng.uniform(radius, size - radius, 2)
    out = []
    for t in np.linspace(0.0, 1.0, n_frames):
        image = Image.new("RGB", (size, size), (128, 128, 128))
        draw = ImageDraw.Draw(image)
        x, y = start + t * (end - start)
        box = (x - radius, y - radius, x + radius, y + radius)
        if visual_class == "circle":
            draw.ellipse(box, fill=color)
        elif visual_class == "square":
            draw.rectangle(box, fill=color)
        elif visual_class == "triangle":
            draw.polygon([(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)],
                         fill=color)
        else:
            w = radius / 3
            draw.rectangle((x - radius, y - w, x + radius, y + w), fill=color)
            draw.rectangle((x - w, y - radius, x + w, y + radius), fill=color)
        out.append(np.asarray(image))
    return np.stack(out)


def synth_audio(audio_class: str, rng: np.random.Generator, seconds: float,
                rate: int = 16000) -> Audio:
    """The class's sound: its base pitch (varied by up to a semitone) in its timbre."""
    base, timbre = AUDIO_CLASSES[audio_class]
    freq = base * 2 ** (rng.uniform(-1, 1) / 12)
    t = np.arange(round(seconds * rate)) / rate
    if timbre == "sine":
        wave = np.sin(2 * np.pi * freq * t)
    elif timbre == "saw":
        wave = 2 * ((freq * t) % 1.0) - 1
    elif timbre == "bell":  # inharmonic partials, each strike decaying
        strike = np.exp(-4.0 * (t % 0.5))
        wave = strike * sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2.76, 5.4))
    else:  # drum: decaying low thumps with noise
        strike = np.exp(-18.0 * (t % 0.25))
        wave = strike * (np.sin(2 * np.pi * freq * t) + 0.3 * rng.normal(0, 1, t.size))
    wave = wave + rng.normal(0, 0.01, t.size)
    return Audio((0.5 * wave / max(1e-9, np.abs(wave).max())).astype(np.float32), rate)


def make_clip(seed: int, index: int, visual_class: str, audio_class: str, seconds: float = 2.0,
              fps: float = 4.0, size: int = 32, rate: int = 16000) -> Video:
    """One synthetic clip: a pure function of its arguments."""
    rng = seeded_rng(seed, "clip", index)
    frames = render_frames(visual_class, rng, max(1, round(seconds * fps)), size)
    return Video(frames, fps, synth_audio(audio_class, rng, seconds, rate))


def generate_clips(out: str | Path, n: int = 32, seed: int = 0, seconds: float = 2.0,
                   fps: float = 4.0, size: int = 32, rate: int = 16000,
                   video_format: str = "png", pairing: str = "balanced") -> list[Clip]:
    """Write ``n`` aligned synthetic clips.

    Swapped (misaligned) pairs are made from these by the ``misaligned`` condition of
    :mod:`modprobe.perturb.av`, so the folder holds each clip once.

    Args:
        out: A new or empty folder.
        n: Number of clips.
        seed: The seed; the same arguments give the same files.
        seconds, fps, size, rate: Duration, frame rate, frame side, audio sample rate.
        video_format: ``"png"`` (frame folders + WAV, no extra needed) or ``"mp4"``
            (H.264 with an AAC soundtrack; needs the video extra).
        pairing: ``"balanced"``: every visual x audio class pairing in turn, so neither
            class predicts the other; ``"partner"``: each shape with its partner sound
            (:data:`PARTNER_SOUNDS`), the shapes in turn.

    Returns:
        The clips written.
    """
    out = Path(out)
    if video_format not in ("png", "mp4"):
        raise ValueError(f"video_format must be 'png' or 'mp4', not {video_format!r}")
    if pairing not in ("balanced", "partner"):
        raise ValueError(f"pairing must be 'balanced' or 'partner', not {pairing!r}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder")
    visual, audio = list(VISUAL_CLASSES), list(AUDIO_CLASSES)
    clips = []
    for i in range(n):
        v, a = visual[i % len(visual)], audio[(i // len(visual) + i) % len(audio)]
        if pairing == "partner":
            a = PARTNER_SOUNDS[v]
        video = make_clip(seed, i, v, a, seconds, fps, size, rate)
        cid = f"c{i:03d}"
        if video_format == "png":
            folder = out / "clips" / cid
            folder.mkdir(parents=True)
            for k, frame in enumerate(video.frames):
                Image.fromarray(frame).save(folder / f"frame_{k:03d}.png")
            write_wav(out / "clips" / f"{cid}.wav", video.audio)  # type: ignore[arg-type]
            clip = Clip(cid, f"clips/{cid}", v, a, f"clips/{cid}.wav", fps, cid)
        else:
            (out / "clips").mkdir(parents=True, exist_ok=True)
            write_clip(out / "clips" / f"{cid}.mp4", video)
            clip = Clip(cid, f"clips/{cid}.mp4", v, a, None, fps, cid)
        clips.append(clip)
    lines = "".join(json.dumps({k: v for k, v in asdict(c).items() if v is not None}) + "\n"
                    for c in clips)
    write_bytes(out / CLIPS_FILE, lines.encode("utf-8"))
    return clips


def write_clip(path: str | Path, video: Video) -> None:
    """Write a video file (H.264 frames, AAC soundtrack when the clip has one) with PyAV."""
    from fractions import Fraction

    from modprobe.adapters.media import require_video

    require_video()
    import av

    fps = Fraction(video.fps).limit_denominator(1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = video.frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        sound = None
        if video.audio is not None:
            sound = container.add_stream("aac", rate=video.audio.sampling_rate)
        for frame in video.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
        if sound is not None:
            samples = video.audio.waveform[None, :].astype(np.float32)  # type: ignore[union-attr]
            chunk = 1024
            for start in range(0, samples.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start:start + chunk]), format="fltp",
                    layout="mono")
                frame.sample_rate = video.audio.sampling_rate  # type: ignore[union-attr]
                container.mux(sound.encode(frame))
            container.mux(sound.encode())


def _check(record: Any, line: int, root: Path) -> list[FieldError]:
    """Problems of one ``clips.jsonl`` record (types, files, frame folders)."""
    errors: list[FieldError] = []

    def error(name: str | None, message: str) -> None:
        errors.append(FieldError(CLIPS_FILE, line, name, message))

    if not isinstance(record, dict):
        error(None, f"expected a JSON object, got {_describe(record)}")
        return errors
    for name, kind in {**REQUIRED, **OPTIONAL}.items():
        if name not in record:
            if name in REQUIRED:
                error(name, "missing required field")
            continue
        if not _type_ok(record[name], kind):
            error(name, f"must be {_TYPE_NAMES[kind]}, got {_describe(record[name])}")
    if errors:
        return errors
    video = root / record["video"]
    if video.is_dir():
        if not any(video.glob("frame_*.png")):
            error("video", f"folder {record['video']} holds no frame_*.png files")
        if not record.get("fps"):
            error("fps", "a folder of frames needs its frame rate (fps)")
        if not record.get("audio"):
            error("audio", "a folder of frames has no soundtrack: give an audio file")
    elif not video.is_file():
        error("video", f"no such file or folder: {record['video']}")
    if record.get("audio") and not (root / record["audio"]).is_file():
        error("audio", f"no such file: {record['audio']}")
    fps = record.get("fps")
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        error("fps", f"must be a positive number, got {fps!r}")
    return errors


def load_clips(root: str | Path) -> list[Clip]:
    """Read and validate a clip folder's ``clips.jsonl`` (every problem reported at once).

    Raises:
        DatasetError: listing each problem with its line and field.
    """
    root = Path(root)
    path = root / CLIPS_FILE
    if not path.is_file():
        raise DatasetError(root, [FieldError(CLIPS_FILE, 0, None, "missing: a clip folder "
                                             "needs clips.jsonl")], schema=SCHEMA_DOC)
    clips, errors = parse_jsonl(path.read_text(encoding="utf-8"), CLIPS_FILE,
                                lambda r, n: _check(r, n, root),
                                lambda r: Clip(**{k: r.get(k) for k in
                                                  (*REQUIRED, *OPTIONAL)}))
    if not errors and not clips:
        errors.append(FieldError(CLIPS_FILE, 0, None, "holds no clips"))
    for kind in ("visual_class", "audio_class"):
        if clips and len({getattr(c, kind) for c in clips}) < 2:
            errors.append(FieldError(CLIPS_FILE, 0, kind, "needs at least two classes (the "
                                     "question's options)"))
    if errors:
        raise DatasetError(root, errors, schema=SCHEMA_DOC)
    return clips


def load_clip_video(root: str | Path, clip: Clip) -> Video:
    """:meth:`Clip.load` with file problems reported as one line naming the clip."""
    try:
        return clip.load(root)
    except (MediaError, OSError, ValueError) as err:
        raise MediaError(f"clip {clip.id!r}: {err}") from None


__all__: list[str] = [
    "AUDIO_CLASSES",
    "CLIPS_FILE",
    "PARTNER_SOUNDS",
    "VISUAL_CLASSES",
    "Clip",
    "generate_clips",
    "load_clip_video",
    "load_clips",
    "make_clip",
    "render_frames",
    "synth_audio",
    "write_clip",
]
