"""Self-assessment replies: the prompt that asks for labels and confidence, and its parser.

For agents whose confidence is elicited, not read off logits.

Ask each modality's agent (the model given only that modality) with `SELF_ASSESSMENT_PROMPT`
and put the raw reply in the JSONL field ``response`` instead of ``labels`` and
``confidence``. `parse_reply` reads it; a reply it cannot read is reported (with its line
and why) and left out of the analysis, never guessed.

Accepted reply (case-insensitive, anywhere in the text, extra text allowed)::

    labels: joy, surprise, neutral
    confidence: 85            (also "85%", "85/100", or 0.85 on the 0-1 scale)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The prompt of the self-assessment (fill ``question`` and ``labels``).
SELF_ASSESSMENT_PROMPT = (
    "{question}\n"
    "Possible labels: {labels}.\n"
    "Answer in exactly two lines:\n"
    "labels: <up to five labels from the list, most likely first, comma-separated>\n"
    "confidence: <how sure you are of the first label, a number from 1 to 100>"
)

_LABELS = re.compile(r"labels?\s*[:=]\s*(?P<labels>[^\n]+)", re.IGNORECASE)
_CONFIDENCE = re.compile(
    r"confidence\s*[:=]\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|/\s*100)?", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedReply:
    """What `parse_reply` read.

    Attributes:
        labels: The labels, best first (None when unreadable).
        confidence: The confidence as written (0-1 or 1-100 scale; None when unreadable).
        problem: Why the reply could not be read ("" when it could).
    """

    labels: list[str] | None
    confidence: float | None
    problem: str = ""


def parse_reply(text: object) -> ParsedReply:
    """Read ``labels: ...`` and ``confidence: N`` from a model's self-assessment reply.

    Returns:
        A `ParsedReply`; ``problem`` says what is missing when a part cannot be read
        (no line is guessed: a reply with two different confidences is unreadable too).
    """
    if not isinstance(text, str) or not text.strip():
        return ParsedReply(None, None, "empty reply")
    labels_match = _LABELS.search(text)
    labels = None
    if labels_match:
        parts = [p.strip().strip(".").strip() for p in labels_match.group("labels").split(",")]
        labels = [p for p in parts if p] or None
    values = {float(m.group("value")) for m in _CONFIDENCE.finditer(text)}
    problems = []
    if labels is None:
        problems.append("no 'labels: a, b, ...' line")
    if not values:
        problems.append("no 'confidence: <number>' line")
    elif len(values) > 1:
        problems.append(f"{len(values)} different confidences")
    if problems:
        return ParsedReply(None, None, "; ".join(problems))
    return ParsedReply(labels, values.pop())
