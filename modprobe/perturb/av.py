"""MMA-Bench conditions on clip questions: pure functions of (item, seed).

=============  ==============================================================  ============
name           what                                                            options
=============  ==============================================================  ============
aligned        the clip as it is                                               -
misaligned     the soundtrack swapped with another clip's (other visual and    ``pool=``
               other audio class); the audio answer follows the sound heard
audio_removed  the soundtrack silenced (visual questions only)                 -
frames_zeroed  every frame black (audio questions only)                        -
caption        ``Video_caption: <wrong option>.`` before the question          ``template=``
long_text      random letters after the question                               ``letters=``
=============  ==============================================================  ============

Same ``(item, name, seed, options)``, same bytes, in any process: randomness comes only
from a generator seeded from ``(seed, name, item.id)``. The conditions live here, not
in :mod:`modprobe.perturb.registry`, because they act on :class:`ClipItem` objects
(which carry both answers) and a swap needs the other clips (``pool``).
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modprobe.adapters.media import Audio, Video
from modprobe.data.clips_items import ClipItem
from modprobe.data.tasks import seeded_rng
from modprobe.perturb.registry import PerturbationError

#: Default length of the long irrelevant text (MMA-Bench appends about 10k letters).
DEFAULT_LETTERS = 10_000
#: Default misleading caption (MMA-Bench's form).
CAPTION_TEMPLATE = "Video_caption: {label}."


def aligned(item: ClipItem, rng: np.random.Generator) -> ClipItem:
    """The clip as it is (the clean condition).

    Args:
        item: The clip question.
        rng: Unused (every condition takes one).

    Returns:
        ``item`` itself.
    """
    return item


def misaligned(item: ClipItem, rng: np.random.Generator,
               pool: Sequence[ClipItem] = ()) -> ClipItem:
    """Play another clip's soundtrack (cut or padded with silence to this clip's length).

    Args:
        item: The clip question.
        rng: Picks the partner clip.
        pool: The clips to take a soundtrack from; a partner has another visual and
            another audio class than ``item``, and a soundtrack.

    Returns:
        The item with the partner's sound; its audio answer is the partner's class.
    """
    partners = [p for p in pool if p.visual_class != item.visual_class
                and p.audio_class != item.audio_class and p.video.audio is not None]
    if not partners:
        raise PerturbationError(f"misaligned needs a pool holding a clip of another visual and "
                                f"another audio class than item {item.id!r}")
    partner = partners[int(rng.integers(len(partners)))]
    sound = partner.video.audio
    assert sound is not None  # filtered above
    own = item.video.audio
    length = own.waveform.size if own is not None else round(item.video.seconds * sound.sampling_rate)
    wave = np.zeros(length, np.float32)
    wave[:min(length, sound.waveform.size)] = sound.waveform[:length]
    video = Video(item.video.frames, item.video.fps, Audio(wave, sound.sampling_rate))
    return item.replaced(video=video, audio_class=partner.audio_class)


def audio_removed(item: ClipItem, rng: np.random.Generator) -> ClipItem:
    """Silence the soundtrack (same length and rate); for visual questions only.

    Args:
        item: The clip question (not asking about the audio).
        rng: Unused.

    Returns:
        The item with a silent soundtrack.
    """
    _refuse_asked(item, "audio", "audio_removed")
    sound = item.video.audio
    if sound is None:
        return item
    silent = Audio(np.zeros_like(sound.waveform), sound.sampling_rate)
    return item.replaced(video=Video(item.video.frames, item.video.fps, silent))


def frames_zeroed(item: ClipItem, rng: np.random.Generator) -> ClipItem:
    """Make every frame black (same size and count); for audio questions only.

    Args:
        item: The clip question (not asking about the picture).
        rng: Unused.

    Returns:
        The item with black frames.
    """
    _refuse_asked(item, "visual", "frames_zeroed")
    black = np.zeros_like(item.video.frames)
    return item.replaced(video=Video(black, item.video.fps, item.video.audio))


def caption(item: ClipItem, rng: np.random.Generator,
            template: str = CAPTION_TEMPLATE) -> ClipItem:
    """Put a caption naming a wrong option of the asked kind before the question.

    Args:
        item: The clip question (with options).
        rng: Picks the wrong option.
        template: The caption, with ``{label}`` for the wrong option.

    Returns:
        The item with the caption.
    """
    wrong = [o for o in item.options if o != item.gold]
    if not wrong:
        raise PerturbationError(f"item {item.id!r} has no wrong option to name in a caption")
    if "{label}" not in template:
        raise PerturbationError("the caption template must contain {label}")
    label = wrong[int(rng.integers(len(wrong)))]
    return item.replaced(caption=template.format(label=label.capitalize()))


def long_text(item: ClipItem, rng: np.random.Generator,
              letters: int = DEFAULT_LETTERS) -> ClipItem:
    """Append ``letters`` random lowercase letters after the question.

    Args:
        item: The clip question.
        rng: Draws the letters.
        letters: How many (a positive integer).

    Returns:
        The item with the long text.
    """
    if not isinstance(letters, int) or letters < 1:
        raise PerturbationError(f"letters must be a positive integer, got {letters!r}")
    alphabet = np.array(list(string.ascii_lowercase))
    return item.replaced(suffix="".join(alphabet[rng.integers(0, 26, letters)]))


def _refuse_asked(item: ClipItem, ask: str, name: str) -> None:
    if item.ask == ask:
        raise PerturbationError(f"{name} removes the {ask} that item {item.id!r} asks about; "
                                f"apply it to {'visual' if ask == 'audio' else 'audio'} "
                                "questions only")


#: The conditions by name, in MMA-Bench's order.
AV_CONDITIONS: dict[str, Callable[..., ClipItem]] = {
    "aligned": aligned, "misaligned": misaligned, "audio_removed": audio_removed,
    "frames_zeroed": frames_zeroed, "caption": caption, "long_text": long_text}


def applicable_conditions(item: ClipItem) -> list[str]:
    """The conditions that fit an item (the removals leave the asked modality)."""
    drop = {"visual": "frames_zeroed", "audio": "audio_removed"}[item.ask]
    return [n for n in AV_CONDITIONS if n != drop]


#: Options every condition accepts (those with no use for them ignore them), so one call
#: fits all names.
SHARED_OPTIONS: tuple[str, ...] = ("pool",)


def av_condition(item: ClipItem, name: str, seed: int = 0, **options: Any) -> ClipItem:
    """Apply MMA condition ``name`` to ``item``: a pure function of (item, seed, options).

    Args:
        item: The aligned item.
        name: A key of :data:`AV_CONDITIONS`.
        seed: The seed (one perturbation draw per seed).
        **options: The condition's options; ``pool=`` (the items a swap draws from) is
            accepted by all.

    Returns:
        A new item whose ``condition`` is ``name``.

    Raises:
        PerturbationError: an unknown name or option, or a condition that removes the
            modality the item asks about.
    """
    if name not in AV_CONDITIONS:
        raise PerturbationError(f"unknown MMA condition {name!r}; known: {', '.join(AV_CONDITIONS)}")
    fn = AV_CONDITIONS[name]
    known = list(inspect.signature(fn).parameters)[2:]
    unknown = [k for k in options if k not in known and k not in SHARED_OPTIONS]
    if unknown:
        raise PerturbationError(f"{name} has no option {unknown[0]!r}; its options: "
                                f"{', '.join(known) or 'none'}")
    taken = {k: v for k, v in options.items() if k in known}
    out = fn(item, seeded_rng(seed, "av", name, item.id), **taken)
    return out.replaced(condition=name)
