"""Where a prompt's textual context (the description) sits among a batch's tokens.

The ``context`` span of :mod:`modprobe.spans` is the description a conflict prompt
places before its question. Its tokens cannot be told from the question's or the chat
template's by their ids, so :func:`locate_context` finds them from character offsets:

1. the description's character range in the rendered prompt (the string the processor
   tokenizes: chat template applied, one placeholder per image);
2. a fast tokenizer's ``offset_mapping`` over that string: a token is context when its
   characters overlap the description (so a token that merges the description's last
   character with the newline after it counts as context);
3. those tokens' positions in the processor's row. The processor expands each image
   placeholder into many tokens (or, for InstructBLIP, prepends query tokens) *before*
   the text the images precede, so the row's tokens from the description on are exactly
   the tokenizer's: the tokenizer's run from the first context token to the end of the
   prompt is found in the row (padding skipped) token by token, which both places the
   context and checks the alignment.

Everything is per row, so left and right padding and rows of different lengths work
alike. When the alignment check fails (a processor that rewrites the text after the
image) the error says so rather than guessing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from modprobe.errors import ModprobeError

#: Key of the `batch seq` boolean context mask in a batch from ``Adapter.encode``. It is
#: not a model input: ``Adapter.model_inputs`` drops it.
CONTEXT_MASK = "context_mask"


#: Most tokens cut from the end of the tokenizer's run when it is matched in the row: text a
#: processor appends may merge with them (see :func:`_row_context_positions`).
_MAX_TRIM = 2


class ContextLocationError(ModprobeError, ValueError):
    """The description's tokens cannot be located exactly in the processor's tokens."""


def context_char_range(rendered: str, text: str, context: str) -> tuple[int, int]:
    r"""``(start, stop)`` of the context's characters in the rendered prompt.

    The prompt's text part (``context + "\\n" + question``) is looked up first, as it is
    specific enough not to occur in a system prompt; the context alone only when a
    template rewrote the text around it.

    Args:
        rendered: The prompt as the chat template rendered it.
        text: The prompt's text part (context, newline, question).
        context: The context.

    Returns:
        Character offsets of the context in ``rendered``.

    Raises:
        ContextLocationError: if the rendered prompt does not contain the context verbatim.
    """
    at = rendered.find(text)
    if at >= 0:
        return at, at + len(context)
    at = rendered.find(context)
    if at >= 0:
        return at, at + len(context)
    raise ContextLocationError(
        f"the rendered prompt does not contain the context {context!r} verbatim (the chat "
        "template changed it), so its tokens cannot be located")


def _row_context_positions(
    row_ids: list[int], own_ids: list[int], own_offsets: list[tuple[int, int]],
    char_range: tuple[int, int],
) -> list[int] | None:
    """Indices into ``row_ids`` (real tokens only) of the context tokens, or None.

    The tokenizer's tokens from the first context token on (context, question, template
    end) must appear in the row as one contiguous run; the rightmost such run is taken.
    A processor may append a token or two after the text (PaliGemma appends a newline,
    which can merge with the last character), so up to :data:`_MAX_TRIM` tokens may be
    cut from the end of the run, never a context token. None when no run matches.
    """
    start, stop = char_range
    hits = [j for j, (a, b) in enumerate(own_offsets) if b > a and a < stop and b > start]
    if not hits:
        return []
    first, last = hits[0], hits[-1]
    for trim in range(min(_MAX_TRIM, len(own_ids) - 1 - last) + 1):
        tail = own_ids[first:len(own_ids) - trim]
        for at in range(len(row_ids) - len(tail), -1, -1):
            if row_ids[at] == tail[0] and row_ids[at:at + len(tail)] == tail:
                return [at + j - first for j in hits]
    return None


def locate_context(
    tokenizer: Any,
    rendered: Sequence[str],
    texts: Sequence[str],
    contexts: Sequence[str | None],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """`batch seq` booleans: which tokens of a processor batch are the prompts' context.

    Args:
        tokenizer: The processor's language tokenizer (a fast one gives offsets).
        rendered: Per row, the string the processor tokenized (placeholders unexpanded).
        texts: Per row, the prompt's text part (:attr:`Prompt.text`).
        contexts: Per row, the context string (None or empty: no context).
        input_ids: `batch seq` the processor's token ids.
        attention_mask: `batch seq`, 1 for real tokens, 0 for padding.

    Returns:
        The mask (all False for rows without context; all False with a warning when the
        tokenizer gives no offsets).

    Raises:
        ContextLocationError: if a row's context cannot be located exactly.
    """
    mask = torch.zeros(input_ids.shape, dtype=torch.bool, device=input_ids.device)
    rows = [i for i, c in enumerate(contexts) if c]
    if not rows:
        return mask
    if not getattr(tokenizer, "is_fast", False):
        warnings.warn(
            f"{type(tokenizer).__name__} is not a fast tokenizer, so it gives no character "
            "offsets and modprobe cannot tell the context's tokens from the question's: the "
            "'context' span is empty and the description counts as 'text'", stacklevel=3)
        return mask
    ids_cpu, attended = input_ids.cpu(), attention_mask.cpu().bool()
    for i in rows:
        char_range = context_char_range(rendered[i], texts[i], contexts[i])  # type: ignore[arg-type]
        positions = attended[i].nonzero().flatten()
        row_ids = ids_cpu[i, positions].tolist()
        found = None
        for special in (False, True):  # the processor may add BOS/EOS; the template may not
            enc = tokenizer(rendered[i], add_special_tokens=special, return_offsets_mapping=True)
            found = _row_context_positions(row_ids, list(enc["input_ids"]),
                                           [tuple(o) for o in enc["offset_mapping"]], char_range)
            if found is not None:
                break
        if found is None:
            raise ContextLocationError(
                f"row {i}: the processor's tokens after the context differ from the "
                "tokenizer's on the rendered prompt, so the context's tokens cannot be located "
                "exactly (the processor rewrites the text after the image)")
        mask[i, positions[found].to(mask.device)] = True
    return mask
