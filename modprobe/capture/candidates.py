"""Candidate answers: token ids whose lens logits and probabilities a capture reports.

A candidate is a token id, or a string tokenized without special tokens whose FIRST
token stands for it (a one-word answer like ``"red"`` is usually one token; when it is
not, the first token is what the model must emit first). Two candidates resolving to the
same id would make their columns indistinguishable, so that is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modprobe.errors import ModprobeError

Candidate = int | str


class CandidateError(ModprobeError, ValueError):
    """A candidate answer cannot be resolved to a distinct token id."""


@dataclass(frozen=True)
class Candidates:
    """Resolved candidate answers.

    Attributes:
        ids: Token id of each candidate (`cand`).
        labels: What the user passed, as a string (``"red"``, or ``"#42"`` for an id).
        tokens: The token each id decodes to.
    """

    ids: tuple[int, ...]
    labels: tuple[str, ...]
    tokens: tuple[str, ...]

    def __len__(self) -> int:
        """The number of candidates."""
        return len(self.ids)


def _label(candidate: Candidate) -> str:
    return candidate if isinstance(candidate, str) else f"#{candidate}"


def decode_token(tokenizer: Any, token_id: int) -> str:
    """The text of one token id (its raw vocabulary entry when decoding gives nothing).

    Args:
        tokenizer: The model's tokenizer (None: the id as ``"#id"``).
        token_id: The token id.

    Returns:
        The decoded text.
    """
    if tokenizer is None:
        return f"#{token_id}"
    text = tokenizer.decode([token_id])
    if text:
        return text
    piece = tokenizer.convert_ids_to_tokens(token_id)
    return str(piece) if piece is not None else f"#{token_id}"


def resolve_candidates(
    candidates: Sequence[Candidate] | None, tokenizer: Any, vocab_size: int
) -> Candidates:
    """Turn candidate answers into distinct token ids.

    Args:
        candidates: Token ids and/or strings (None or empty: no candidates).
        tokenizer: The model's tokenizer (needed for strings and for decoding).
        vocab_size: Size of the unembedding's output.

    Raises:
        CandidateError: if a string tokenizes to nothing or to the unknown token, an id
            is outside the vocabulary, or two candidates share a (first) token id; the
            message names the candidates.
    """
    ids: list[int] = []
    labels: list[str] = []
    owner: dict[int, Candidate] = {}
    for cand in candidates or ():
        if isinstance(cand, str):
            if tokenizer is None:
                raise CandidateError(
                    f"candidate {cand!r} is a string but no tokenizer is available"
                )
            tokens = tokenizer(cand, add_special_tokens=False)["input_ids"]
            if not tokens:
                raise CandidateError(f"candidate {cand!r} tokenizes to no token")
            tid = int(tokens[0])
            unk = getattr(tokenizer, "unk_token_id", None)
            if unk is not None and tid == unk and cand != getattr(tokenizer, "unk_token", None):
                raise CandidateError(
                    f"candidate {cand!r} is not in the tokenizer's vocabulary (it tokenizes "
                    f"to the unknown token {tokenizer.unk_token!r}, so its logit would be "
                    "that of every unknown word); pass answers the model can emit")
        elif isinstance(cand, int) and not isinstance(cand, bool):
            tid = int(cand)
        else:
            raise CandidateError(f"candidate {cand!r} is neither a token id nor a string")
        if not 0 <= tid < vocab_size:
            raise CandidateError(
                f"candidate {cand!r} is token id {tid}, outside the vocabulary (size {vocab_size})"
            )
        if tid in owner:
            first = owner[tid]
            raise CandidateError(
                f"candidates {first!r} and {cand!r} both resolve to token id {tid} "
                f"({decode_token(tokenizer, tid)!r}, the first token of each); their logits "
                "would be the same column. Pass distinct answers or explicit token ids."
            )
        owner[tid] = cand
        ids.append(tid)
        labels.append(_label(cand))
    return Candidates(
        ids=tuple(ids), labels=tuple(labels), tokens=tuple(decode_token(tokenizer, i) for i in ids)
    )
