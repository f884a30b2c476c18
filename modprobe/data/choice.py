"""Multiple choice: listing options in a prompt and reading an answer back to one option.

An answer is read as the option letter *or* the option's word(s); both map to one
option, and when both are given they must agree. An answer naming no option, two
different ones, or a letter and a word that disagree is unreadable (None here,
``"unreadable"`` in tables): its own category, never silently right or wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Appended to a multiple-choice question after its options (LLaVA-1.5's MC prompt).
CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def format_choices(question: str, options: Sequence[str]) -> str:
    """A multiple-choice prompt: the question, one lettered line per option, the instruction.

    Args:
        question: The question.
        options: The options, in the order they are lettered (A, B, ...).

    Returns:
        The prompt text (``A. red`` style lines, then :data:`CHOICE_INSTRUCTION`).
    """
    listed = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    return f"{question}\n{listed}\n{CHOICE_INSTRUCTION}"


_LETTER_ALONE = re.compile(r"^[\s(\[]*([A-Za-z])[\s)\].:]*$")
_LETTER_LEAD = re.compile(r"^[\s(\[]*([A-Z])\s*[).:\]]")
_LETTER_SAID = re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\b\)?",
                          re.IGNORECASE)


def read_choice(answer: Any, options: Sequence[str],
                aliases: Mapping[str, int] | None = None) -> int | None:
    """Index of the option an answer names, or None when it is unreadable.

    The answer may give the letter (``"B"``, ``"(b)"``, ``"B. blue"``, ``"The answer is
    B"``) or the option's word(s) (``"blue"``, ``"It is blue."``); both are read, and when
    both are given they must agree. Neither, two different options, or a letter and a
    word that disagree: None. A lone lowercase ``"a"`` is read as the letter only when it
    is the whole answer (elsewhere it is an article).

    Args:
        answer: The model's answer text (None or NaN: unreadable).
        options: The options, in letter order.
        aliases: Further strings that name an option (e.g. an option's first token, when
            only one answer token was read), normalised before matching.
    """
    if not isinstance(answer, str) or not answer.strip():
        return None
    letter = _letter(answer, len(options))
    word = _word(answer, options, aliases or {})
    if letter is not None and word is not None and letter != word:
        return None
    return letter if letter is not None else word


def _letter(answer: str, count: int) -> int | None:
    match = (_LETTER_ALONE.match(answer) or _LETTER_LEAD.match(answer)
             or _LETTER_SAID.search(answer))
    if match is None:
        return None
    index = LETTERS.index(match.group(1).upper())
    return index if index < count else None


def _word(answer: str, options: Sequence[str], aliases: Mapping[str, int]) -> int | None:
    text = f" {_words(answer)} "
    found = {i for i, option in enumerate(options) if f" {_words(option)} " in text}
    # "dark red" also contains "red": keep only options not inside another found option.
    found = {i for i in found if not any(j != i and f" {_words(options[i])} "
                                         in f" {_words(options[j])} " for j in found)}
    if not found:
        key = _words(answer)
        found = {i for alias, i in aliases.items() if _words(alias) == key and key}
    return found.pop() if len(found) == 1 else None


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w'-]+", str(text).casefold()))
