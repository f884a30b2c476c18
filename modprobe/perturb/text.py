"""Text perturbations of image-heavy items: unrelated facts, misleading description, OCR noise.

Each returns the item with the perturbation's text *prepended* to its context (most
image-heavy items have none, so the text becomes the whole context). None of them ever
names the gold answer: unrelated facts and OCR noise leave out every option word, and a
misleading description names a wrong option.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from modprobe.data.tasks import TaskItem
from modprobe.perturb.registry import PerturbationError

#: Unrelated scientific facts (UF). None names a color, so none misleads a color task.
FACTS: tuple[str, ...] = (
    "Water boils at 100 degrees Celsius at sea level.",
    "The Moon orbits the Earth about once every 27 days.",
    "Sound travels faster in water than in air.",
    "An octopus has three hearts.",
    "The speed of light in a vacuum is about 300,000 kilometres per second.",
    "Honey bees communicate the location of flowers by dancing.",
    "Diamond is a form of pure carbon.",
    "The human heart beats about 100,000 times a day.",
    "Mount Everest is the highest mountain above sea level.",
    "A year on Mercury lasts 88 Earth days.",
    "Bats navigate in the dark using echolocation.",
    "The adult human body has 206 bones.",
    "Iron is the most common element in the Earth's core.",
    "Sharks have existed for more than 400 million years.",
    "Venus rotates in the opposite direction to most planets.",
    "Bamboo can grow almost a metre in a single day.",
    "Electrons carry a negative electric charge.",
    "The Pacific is the largest ocean on Earth.",
    "Helium is lighter than air.",
    "A hummingbird can fly backwards.",
    "Earthquakes are caused by the sudden movement of tectonic plates.",
    "Glass is made mostly from sand.",
    "Penguins live almost only in the Southern Hemisphere.",
    "The Sun is a star about 4.6 billion years old.",
    "Ants can carry many times their own body weight.",
    "Light from the Sun reaches the Earth in about eight minutes.",
    "The cheetah is the fastest land animal.",
    "Oxygen makes up about 21 percent of the air.",
    "Jupiter is the largest planet in the Solar System.",
    "Sea otters hold hands while they sleep.",
    "The boiling point of water drops at high altitude.",
    "A group of crows is called a murder.",
)

#: Words of OCR-like noise (receipts, forms, signs), before character corruption.
OCR_WORDS: tuple[str, ...] = (
    "INVOICE", "TOTAL", "Qty", "No.", "Date", "Page", "Ref", "Tel", "www", "Item", "Price",
    "SUBTOTAL", "TAX", "Cash", "Change", "Receipt", "Order", "Code", "Name", "Address",
    "Street", "Ave", "Room", "Floor", "EXIT", "Open", "Hours", "Mon-Fri", "Sat", "Fax",
    "Account", "Amount", "Due", "Paid", "Balance", "Ticket", "Gate", "Seat", "Form", "Sign",
)
#: Look-alike characters an OCR engine confuses.
OCR_CONFUSIONS: dict[str, str] = {"O": "0", "o": "0", "l": "1", "I": "1", "S": "5", "s": "5",
                                  "B": "8", "e": "c", "a": "o", "E": "F", "m": "rn", "g": "9"}
#: Default description of a misleading option, when the item has no template.
DEFAULT_MISLEADING = "This image shows {option}."


def _words_of(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.casefold()))


def _phrase(text: str) -> str:
    return " ".join(re.findall(r"[\w'-]+", text.casefold()))


def _forbidden(item: TaskItem) -> set[str]:
    """Words a neutral text must not contain: every word of the gold and the options."""
    words = _words_of(item.answer)
    for option in item.options or []:
        words |= _words_of(option)
    return words


def _prepend(item: TaskItem, text: str) -> TaskItem:
    context = f"{text}\n{item.context}" if item.context else text
    return item.replaced(context=context)


def unrelated_facts(item: TaskItem, rng: np.random.Generator, sentences: int = 3,
                    bank: Sequence[str] | None = None) -> TaskItem:
    """UF: ``sentences`` facts from ``bank`` (default :data:`FACTS`), in a seeded order.

    Facts that contain a word of the gold answer or of any option are never drawn.

    Args:
        item: The task item.
        rng: Draws and orders the facts.
        sentences: How many facts.
        bank: The facts to draw from (default :data:`FACTS`).

    Returns:
        The item with the facts as its description.
    """
    pool = [f for f in (bank if bank is not None else FACTS)
            if not _words_of(f) & _forbidden(item)]
    if sentences < 1:
        raise PerturbationError(f"UF: sentences must be >= 1, got {sentences}")
    if len(pool) < sentences:
        raise PerturbationError(
            f"UF: the bank has {len(pool)} usable facts for item {item.id!r} (facts naming an "
            f"option are left out), fewer than sentences={sentences}; give a larger bank")
    chosen = rng.choice(len(pool), size=sentences, replace=False)
    return _prepend(item, " ".join(pool[int(i)] for i in chosen))


def misleading_description(item: TaskItem, rng: np.random.Generator,
                           template: str | None = None) -> TaskItem:
    """MD: a description naming a wrong option, drawn at random, and never the right one.

    The template is ``template``, else the item's ``misleading_template``, else
    :data:`DEFAULT_MISLEADING`; ``{option}`` is the wrong option and ``{subject}`` the
    asked object. A wrong option whose text contains the gold answer's words ("dark
    red" for "red"), or whose description would, is never used.

    Args:
        item: The task item (with options).
        rng: Picks the wrong option.
        template: The description's template (see above).

    Returns:
        The item with the misleading description.
    """
    if not item.options:
        raise PerturbationError(f"MD: item {item.id!r} has no options, so there is no wrong "
                                "answer to name; give the item its options (answer space)")
    fmt = template or item.misleading_template or DEFAULT_MISLEADING
    gold = f" {_phrase(item.answer)} "
    wrong = [o for o in item.options if o.casefold().strip() != item.answer.casefold().strip()]
    order = [wrong[int(i)] for i in rng.permutation(len(wrong))]
    for option in order:
        text = fmt.format(option=option, subject=item.subject or "object")
        # whole-word test: the gold answer must not appear in the text
        if gold not in f" {_phrase(text)} ":
            return _prepend(item, text)
    raise PerturbationError(f"MD: every wrong option of item {item.id!r} would name the gold "
                            f"answer {item.answer!r}; no misleading description is possible")


def ocr_noise(item: TaskItem, rng: np.random.Generator, words: int = 16) -> TaskItem:
    """OCR: receipt-like text with look-alike character errors, as the description.

    Args:
        item: The task item.
        rng: Draws the words, errors and numbers.
        words: How many words, on a few lines; none is a word of the gold answer or the
            options.

    Returns:
        The item with the OCR-like description.
    """
    if words < 1:
        raise PerturbationError(f"OCR: words must be >= 1, got {words}")
    forbidden = _forbidden(item)
    out: list[str] = []
    while len(out) < words:
        if rng.random() < 0.3:
            token = str(int(rng.integers(0, 100_000))) + ("" if rng.random() < 0.5 else
                                                          f".{int(rng.integers(0, 100)):02d}")
        else:
            token = "".join(OCR_CONFUSIONS.get(c, c) if rng.random() < 0.25 else c
                            for c in OCR_WORDS[int(rng.integers(len(OCR_WORDS)))])
        if not _words_of(token) & forbidden:
            out.append(token)
    gaps = ["\n" if rng.random() < 0.15 else " " for _ in out[1:]]
    text = out[0] + "".join(gap + token for gap, token in zip(gaps, out[1:]))
    return _prepend(item, text)
