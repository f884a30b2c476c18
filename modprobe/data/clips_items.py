"""MMA questions about clips: the visual or the audio class, from listed options.

A :class:`ClipItem` is one question about one clip under one condition: its prompt
holds the clip (frames with soundtrack), an optional caption before the question
(``context``) and optional text after it. The gold answer is the class of the asked
modality *as presented*: after a swap of soundtracks (the ``misaligned`` condition) the
audio question's answer is the sound now heard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modprobe.adapters.base import Prompt
from modprobe.adapters.media import Video
from modprobe.data.choice import read_choice
from modprobe.data.clips import Clip, load_clip_video

#: What a question asks for: the visual class or the audio class.
PROMPT_TYPES: tuple[str, ...] = ("visual", "audio")
#: The question of each prompt type; ``{options}`` becomes the comma-separated options.
QUESTIONS: dict[str, str] = {
    "visual": "Which shape is shown in the video ? Options : {options} . Answer with one word .",
    "audio": "Which sound is heard in the audio ? Options : {options} . Answer with one word .",
}
#: The category of an answer that names no option, or several.
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ClipItem:
    """One question about one clip.

    Attributes:
        id: ``"<clip id>:<ask>"``.
        ask: ``"visual"`` or ``"audio"``.
        video: The clip as presented (frames and soundtrack).
        visual_class: The class of the frames shown.
        audio_class: The class of the soundtrack played.
        options: The answer options of the asked kind.
        cluster: Items sharing a cluster are not independent (the same clip).
        caption: Text placed before the question (the misleading caption), or None.
        suffix: Text placed after the question (irrelevant letters), or None.
        condition: The MMA condition that made it (``"aligned"`` for the clip as is).
    """

    id: str
    ask: str
    video: Video
    visual_class: str
    audio_class: str
    options: tuple[str, ...]
    cluster: str
    caption: str | None = None
    suffix: str | None = None
    condition: str = "aligned"

    def __post_init__(self) -> None:
        """Refuse a question that asks for neither the visual nor the audio class."""
        if self.ask not in PROMPT_TYPES:
            raise ValueError(f"ask must be one of {', '.join(PROMPT_TYPES)}, not {self.ask!r}")

    @property
    def gold(self) -> str:
        """The class of the asked modality as presented."""
        return self.visual_class if self.ask == "visual" else self.audio_class

    @property
    def question(self) -> str:
        """The question with its options (and the suffix after it, if any)."""
        text = QUESTIONS[self.ask].format(options=" , ".join(self.options))
        return f"{text}\n{self.suffix}" if self.suffix else text

    def prompt(self, visual: str = "video") -> Prompt:
        """The model input: the clip, the caption, the question.

        Args:
            visual: ``"video"``: the frames as a video with the soundtrack in it (needs
                the video extra); ``"image"``: the middle frame as an image and the
                soundtrack as an audio clip (no torchvision needed).

        Returns:
            The prompt, with the caption (if any) as its context.

        Raises:
            ValueError: for a ``visual`` other than ``"video"`` and ``"image"``.
        """
        if visual == "video":
            return Prompt(self.question, context=self.caption, videos=[self.video])
        if visual != "image":
            raise ValueError(f"visual must be 'video' or 'image', not {visual!r}")
        from PIL import Image

        frame = Image.fromarray(self.video.frames[len(self.video.frames) // 2])
        sound = [self.video.audio] if self.video.audio is not None else []
        return Prompt(self.question, context=self.caption, images=[frame], audio=sound)

    def read(self, answer: Any) -> str:
        """The option an answer names, or :data:`UNREADABLE`.

        Args:
            answer: The model's reply; the option's word or its letter both count
                (:func:`modprobe.data.choice.read_choice`).

        Returns:
            The option named, or :data:`UNREADABLE` when it names none or several.
        """
        index = read_choice(answer, self.options)
        return UNREADABLE if index is None else self.options[index]

    def replaced(self, **changes: Any) -> ClipItem:
        """A copy with some fields changed."""
        return replace(self, **changes)


def clip_items(root: str | Path, clips: Sequence[Clip],
               asks: Sequence[str] = PROMPT_TYPES) -> list[ClipItem]:
    """One aligned item per clip and prompt type; options are the folder's classes.

    Each clip's files are read once and shared by its items.

    Args:
        root: The clip folder.
        clips: Its clips (:func:`modprobe.data.clips.load_clips`).
        asks: The prompt types to ask, from :data:`PROMPT_TYPES`.

    Returns:
        The items, clip by clip, one per ask in the order of ``asks``; a question's options
        are all the classes of its kind among ``clips``, sorted.

    Raises:
        MediaError: naming the clip, when its files cannot be read.
    """
    visual = tuple(sorted({c.visual_class for c in clips}))
    audio = tuple(sorted({c.audio_class for c in clips}))
    items = []
    for clip in clips:
        video = load_clip_video(root, clip)
        for ask in asks:
            items.append(ClipItem(
                id=f"{clip.id}:{ask}", ask=ask, video=video, visual_class=clip.visual_class,
                audio_class=clip.audio_class, options=visual if ask == "visual" else audio,
                cluster=clip.cluster or clip.id))
    return items
