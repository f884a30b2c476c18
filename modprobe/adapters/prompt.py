"""What a model is asked: a :class:`Prompt` and the three study conditions.

A prompt holds the question, an optional textual context and the media (images, videos,
audio); :meth:`Prompt.for_condition` builds the prompt of one study condition from an
item's parts. :class:`AdapterError` is what an input that does not fit a family raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modprobe.adapters.media import Audio, Video, as_audio, as_list, as_video
from modprobe.errors import ModprobeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

#: The three conditions of a modality-conflict study (docs/science.md section 1).
Condition = Literal["vision", "text", "multi"]
CONDITIONS: tuple[Condition, ...] = ("vision", "text", "multi")


class AdapterError(ModprobeError, ValueError):
    """A model cannot be adapted, or an input does not fit the model's family."""


@dataclass
class Prompt:
    """One model input: optional images, videos, audio and textual context, and a question.

    The three study conditions are ``Prompt(question, image=img)`` (vision-only),
    ``Prompt(question, context=text)`` (text-only) and both (conflict / multi).
    Audio-visual prompts add ``videos`` (each with its soundtrack, if any) and ``audio``
    (clips heard on their own); the chat message holds images, videos, audio, then text.

    Attributes:
        question: The question, e.g. ``"What color is the circle? Please use one word..."``.
        context: Textual description placed between the media and the question.
        images: Images shown before the text (most studies use exactly one).
        videos: Videos (:class:`~modprobe.adapters.clips.Video`, ``(frames, fps)`` or a
            file path); a video's soundtrack goes in with it (interleaved by Qwen2.5-Omni).
        audio: Audio clips (:class:`~modprobe.adapters.clips.Audio`,
            ``(waveform, sampling_rate)`` or a file path).
    """

    question: str = ""
    context: str | None = None
    images: list[Image] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    audio: list[Audio] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Check every field and turn media given as tuples or paths into their classes."""
        # Checked here, where the prompt is made, not deep inside a processor call.
        if not isinstance(self.question, str) or not self.question.strip():
            got = "nothing" if self.question == "" else f"{self.question!r}"
            raise AdapterError(f"Prompt needs a question (a non-empty string), got {got}: "
                               "Prompt('What color is the circle?', images=[img])")
        if self.context is not None and not isinstance(self.context, str):
            raise AdapterError(f"Prompt context must be a string or None, got "
                               f"{type(self.context).__name__}")
        from PIL.Image import Image as PILImage

        images = self.images
        if images is None:
            images = []
        elif isinstance(images, PILImage):
            raise AdapterError("Prompt images must be a list of PIL images, got one image "
                               "without a list: write images=[img]")
        elif not isinstance(images, (list, tuple)):
            raise AdapterError(f"Prompt images must be a list of PIL images, got a "
                               f"{type(images).__name__}: write images=[img] (or [] for none)")

        for i, image in enumerate(images):
            if not isinstance(image, PILImage):
                raise AdapterError(f"Prompt images[{i}] is a {type(image).__name__}, not a PIL "
                                   "image; open files with PIL.Image.open(path)")
        self.images = list(images)
        self.videos = [as_video(v) for v in as_list(self.videos, "videos")]
        self.audio = [as_audio(a) for a in as_list(self.audio, "audio")]

    @property
    def modalities(self) -> frozenset[str]:
        """The modalities this prompt holds (``image``, ``video``, ``audio``, ``context``)."""
        held = {"image": self.images, "video": self.videos, "context": self.context,
                "audio": self.audio or [v for v in self.videos if v.audio is not None]}
        return frozenset(name for name, value in held.items() if value)

    @classmethod
    def for_condition(
        cls, condition: Condition | set[str] | frozenset[str], question: str,
        context: str | None, image: Image | None, videos: list[Any] | None = None,
        audio: list[Any] | None = None,
    ) -> Prompt:
        """Build the prompt of one study condition from an item's parts.

        Args:
            condition: ``"vision"``, ``"text"``, ``"multi"`` or a set of modalities
                (``{"video", "audio"}``, see :func:`~modprobe.adapters.conditions.condition_modalities`):
                the parts the prompt holds.
            question: The item's question.
            context: Its textual context (needed by ``text`` and ``multi``).
            image: Its image (needed by ``vision`` and ``multi``).
            videos: Its videos, for conditions with ``video``.
            audio: Its audio clips, for conditions with ``audio``.

        Returns:
            The prompt holding exactly the parts of ``condition``.

        Raises:
            ValueError: an unknown condition, or a part the condition needs is missing.
        """
        from modprobe.adapters.conditions import condition_modalities

        wanted = condition_modalities(condition)
        given = {"image": image, "context": context, "video": videos, "audio": audio}
        missing = [m for m in ("image", "video", "audio", "context") if m in wanted
                   and not given[m]]
        if missing:
            named = {"image": "an image", "context": "a textual context", "video": "video",
                     "audio": "audio"}
            raise ValueError(f"the {condition!r} condition needs "
                             f"{' and '.join(named[m] for m in missing)}")
        return cls(
            question=question,
            context=context if "context" in wanted else None,
            images=[image] if "image" in wanted else [],
            videos=list(videos or []) if "video" in wanted else [],
            audio=list(audio or []) if "audio" in wanted else [],
        )

    @property
    def text(self) -> str:
        """The text part: context (if any) then question, on separate lines."""
        return f"{self.context}\n{self.question}" if self.context else self.question
