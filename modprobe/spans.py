"""Modality spans: which part of the prompt every token of a padded batch belongs to.

A multimodal prompt is a sequence of tokens, each of which came from one source:
the image (the placeholder tokens the vision features are scattered into), a video, an
audio clip, the textual context (the description a conflict prompt gives before its
question), or the rest of the text (the question, the chat-template scaffolding, special
tokens, the vision start/end wrappers of Qwen-VL). Padding belongs to no span.

Text is split in two on purpose: the analyses ask how much the answer attends to the
*description* as against the image, and the question and template are not evidence for
either answer. **All text = context + text**: add the two spans to get the attention
to the whole text.

`ModalitySpans` stores one integer code per token (`batch seq`) and answers the
questions the capture engine and the analyses ask: a boolean mask per modality, the
contiguous index ranges of a row, and the answer position of each row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The spans a token can belong to, in the order of the `span` axis of every
#: `batch layer head span` array modprobe returns. ``context`` is the prompt's textual
#: context (the description); ``text`` is all other text (question, chat template,
#: special tokens). All text = ``context`` + ``text``.
SPAN_NAMES: tuple[str, ...] = ("image", "video", "audio", "context", "text")

#: The span axis of runs and arrays written before the context span existed (their
#: ``text`` is all text); readers of saved arrays accept both layouts.
LEGACY_SPAN_NAMES: tuple[str, ...] = ("image", "video", "audio", "text")

#: The spans made of text tokens (their sum is the attention to the whole text).
TEXT_SPANS: tuple[str, ...] = ("context", "text")

#: Code used for padding tokens (they belong to no span).
PAD_CODE = -1

_CODE = {name: i for i, name in enumerate(SPAN_NAMES)}


def span_names_of(size: int) -> tuple[str, ...]:
    """The span names of a saved array whose span axis has ``size`` entries.

    Raises:
        ValueError: if ``size`` matches neither the current nor the legacy layout.
    """
    for names in (SPAN_NAMES, LEGACY_SPAN_NAMES):
        if size == len(names):
            return names
    raise ValueError(f"a span axis of {size} entries matches no modprobe layout; expected "
                     f"{len(SPAN_NAMES)} ({', '.join(SPAN_NAMES)})")


def span_code(name: str) -> int:
    """Integer code of a span name (``"image"`` -> 0, ...; ``"pad"`` -> -1)."""
    if name == "pad":
        return PAD_CODE
    try:
        return _CODE[name]
    except KeyError:
        raise ValueError(f"unknown span {name!r}; known spans: {', '.join(SPAN_NAMES)}, pad") from None


@dataclass(frozen=True)
class ModalitySpans:
    """Per-token modality codes of a padded batch.

    Attributes:
        codes: `batch seq` int64 tensor; ``SPAN_NAMES.index(m)`` for a token of modality m,
            ``PAD_CODE`` (-1) for padding.
    """

    codes: torch.Tensor

    @classmethod
    def from_masks(
        cls,
        attention_mask: torch.Tensor,
        **modality_masks: torch.Tensor,
    ) -> ModalitySpans:
        """Build spans from an attention mask and one boolean mask per span but ``text``.

        Every attended token that no mask claims is text.

        Args:
            attention_mask: `batch seq`, 1 for real tokens, 0 for padding.
            **modality_masks: e.g. ``image=input_ids == image_token_id``,
                ``context=batch["context_mask"]``; each `batch seq`.

        Raises:
            ValueError: if two modality masks claim the same token, or a name is unknown.
        """
        attended = attention_mask.bool()
        codes = torch.full(attended.shape, _CODE["text"], dtype=torch.long, device=attended.device)
        claimed = torch.zeros_like(attended)
        for name, mask in modality_masks.items():
            if name not in _CODE or name == "text":
                raise ValueError(
                    f"unknown modality mask {name!r}; use one of image, video, audio, context")
            mask = mask.bool() & attended
            if (mask & claimed).any():
                raise ValueError(f"the {name} mask overlaps another modality's tokens")
            codes[mask] = _CODE[name]
            claimed |= mask
        codes[~attended] = PAD_CODE
        return cls(codes=codes)

    @property
    def batch_size(self) -> int:
        """The number of rows of the batch."""
        return self.codes.shape[0]

    @property
    def seq_len(self) -> int:
        """The padded sequence length."""
        return self.codes.shape[1]

    def mask(self, name: str) -> torch.Tensor:
        """Boolean `batch seq` mask of the tokens of one span (``"pad"`` for padding)."""
        return self.codes == span_code(name)

    def one_hot(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """`batch seq span` indicator of each token's span (all zero for padding)."""
        out = torch.zeros(*self.codes.shape, len(SPAN_NAMES), dtype=dtype, device=self.codes.device)
        real = self.codes >= 0
        out[real] = torch.nn.functional.one_hot(self.codes[real], len(SPAN_NAMES)).to(dtype)
        return out

    def counts(self) -> dict[str, list[int]]:
        """Number of tokens of each span (and padding) per row."""
        names = (*SPAN_NAMES, "pad")
        return {n: self.mask(n).sum(dim=1).tolist() for n in names}

    def ranges(self, row: int) -> list[tuple[str, int, int]]:
        """Contiguous runs of one row as ``(span, start, stop)`` with ``stop`` exclusive."""
        codes = self.codes[row].tolist()
        runs: list[tuple[str, int, int]] = []
        start = 0
        for i in range(1, len(codes) + 1):
            if i == len(codes) or codes[i] != codes[start]:
                code = codes[start]
                runs.append(("pad" if code == PAD_CODE else SPAN_NAMES[code], start, i))
                start = i
        return runs

    def answer_positions(self) -> torch.Tensor:
        """`batch` index of the last non-padding token of each row (the answer position).

        Correct under left and right padding: it is the largest attended index.
        """
        real = (self.codes != PAD_CODE).long()
        if (real.sum(dim=1) == 0).any():
            raise ValueError("a row of the batch is all padding: it has no answer position")
        idx = torch.arange(self.seq_len, device=self.codes.device).expand_as(real)
        return (idx * real).argmax(dim=1)

    def describe(self, row: int) -> str:
        """Run-length summary of one row, e.g. ``text[0:5] image[5:21] context[21:27] text[27:30]``."""
        return " ".join(f"{n}[{a}:{b}]" for n, a, b in self.ranges(row))
