"""The clean input of a text-heavy item: paper 003's random-noise image, or no image.

Paper 003 (arXiv 2505.19616) gives text-heavy tasks a random-noise image as their
*default* visual input; its image perturbations (a real irrelevant image, a black or a
white canvas) replace that noise. modprobe does the same by default (``noise``), and keeps
the older baseline, a prompt without any image, as an option (``none``). Under ``noise``
the RP perturbation is a *second*, independent noise image, so it measures how much the
answer depends on which noise was drawn, not the effect of adding an image.
"""

from __future__ import annotations

from modprobe.data.tasks import TaskItem, seeded_rng
from modprobe.perturb.image import random_pixels
from modprobe.perturb.registry import PerturbationError

#: Clean inputs of text-heavy items: ``noise`` (paper 003, the default) or ``none``.
TEXT_BASELINES: tuple[str, ...] = ("noise", "none")
DEFAULT_TEXT_BASELINE = "noise"


def check_text_baseline(baseline: str) -> str:
    """``baseline`` if it is one of :data:`TEXT_BASELINES` (else a one-line error)."""
    if baseline not in TEXT_BASELINES:
        raise PerturbationError(f"--text-baseline must be one of {', '.join(TEXT_BASELINES)}, "
                                f"got {baseline!r}")
    return baseline


def text_baseline(item: TaskItem, baseline: str = DEFAULT_TEXT_BASELINE, seed: int = 0,
                  size: tuple[int, int] | int | None = None) -> TaskItem:
    """The clean input of ``item`` under a text-heavy baseline.

    A text-heavy item (``relevant="text"``) without an image of its own gets, under
    ``noise``, a random-pixel image seeded from ``(seed, "baseline", item.id)`` (another
    stream than the RP perturbation's); under ``none`` it stays without an image. Every
    other item is returned unchanged. The result is still the clean condition
    (``perturbation == "clean"``).

    Args:
        item: The item.
        baseline: ``noise`` or ``none``.
        seed: The seed (the run's, or a perturbation draw's).
        size: ``(width, height)`` of the noise image (None: :data:`DEFAULT_SIZE`).

    Returns:
        The clean item.
    """
    check_text_baseline(baseline)
    if baseline == "none" or item.relevant != "text" or item.image is not None \
            or item.image_file is not None:
        return item
    return random_pixels(item, seeded_rng(seed, "baseline", item.id), size=size)


def default_perturbations(names: tuple[str, ...] | list[str], baseline: str) -> list[str]:
    """The perturbations run when none are named.

    Every one, except RP under ``noise`` (there the clean input already is a random-pixel
    image).

    Args:
        names: Every registered perturbation.
        baseline: The text-heavy items' clean input (``noise`` or ``none``).

    Returns:
        The names to run, in order.
    """
    check_text_baseline(baseline)
    return [n for n in names if not (baseline == "noise" and n == "RP")]
