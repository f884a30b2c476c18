"""Offline word-level tokenizers for tiny test models.

There is no model hub in tests, so tiny models cannot reuse a real checkpoint's
tokenizer. :func:`word_level_tokenizer` builds one from a fixed word list with the
``tokenizers`` library and wraps it as a transformers fast tokenizer: every vocabulary
word (each color word in particular) is exactly one token, with or without a leading
space, which keeps answer candidates unambiguous in tests.

Text is split on spaces (dropped), newlines and punctuation (kept as tokens); words that
are not in the vocabulary become the unknown token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

#: The six color words of the modality-conflict datasets (one token each).
COLOR_WORDS: tuple[str, ...] = ("red", "yellow", "blue", "green", "purple", "orange")

#: Shape words of the synthetic image datasets.
SHAPE_WORDS: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "heart", "cross", "diamond", "hexagon",
    "shape", "object", "ball", "box", "car", "flower", "apple", "sky", "background",
)

#: Question, context and chat-scaffold words (both capitalisations where both occur).
COMMON_WORDS: tuple[str, ...] = (
    "What", "what", "Which", "which", "Is", "is", "are", "Are", "the", "The", "a", "A", "an",
    "of", "in", "on", "this", "This", "that", "image", "picture", "photo", "color", "colour",
    "Please", "please", "use", "one", "word", "answer", "Answer", "with", "only", "single",
    "shown", "show", "shows", "see", "there", "There", "it", "It", "its", "and", "or", "to",
    "be", "as", "described", "description", "text", "says", "said", "according", "context",
    "question", "Question", "Context", "In", "I", "you", "You", "your", "yes", "no", "Yes",
    "No", "not", "has", "have", "small", "large", "big", "left", "right", "top", "bottom",
    "center", "middle", "dark", "light", "bright", "white", "black", "gray", "brown", "pink",
    "zero", "two", "three", "four", "five", "many", "how", "How", "shape", "here", "Here",
    "USER", "ASSISTANT", "INST", "user", "assistant", "system", "helpful", "Question",
    "Describe", "describe", "name", "look", "looks", "like", "painted", "drawn", "filled",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
)

#: Punctuation kept as single tokens (the pre-tokenizer isolates each of these).
PUNCTUATION: tuple[str, ...] = (
    ".", ",", "?", "!", ":", ";", "'", '"', "(", ")", "[", "]", "/", "-", "<", ">", "|", "_",
    "\n",
)

#: Default vocabulary of tiny models: colors, shapes, common words and punctuation.
DEFAULT_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys((*COLOR_WORDS, *SHAPE_WORDS, *COMMON_WORDS, *PUNCTUATION))
)


def _word_level_backend(
    words: Iterable[str], special_tokens: Sequence[str], unk_token: str,
    prefix_tokens: Sequence[str], suffix_tokens: Sequence[str],
) -> Tokenizer:
    """The ``tokenizers`` object: special tokens first (ids 0..), then the words."""
    vocab: dict[str, int] = {}
    for token in (unk_token, *special_tokens, *words):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token=unk_token))
    # Spaces separate words and are dropped; newlines and punctuation are tokens of their own.
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t\r]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\n|[^\w\s]"), behavior="isolated"),
    ])
    # Joins tokens with spaces and removes the space before punctuation when decoding.
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in dict.fromkeys((unk_token, *special_tokens))])
    if prefix_tokens or suffix_tokens:
        template = " ".join((*prefix_tokens, "$A", *suffix_tokens))
        pair = " ".join((*prefix_tokens, "$A", *suffix_tokens, "$B", *suffix_tokens))
        used = dict.fromkeys((*prefix_tokens, *suffix_tokens))
        backend.post_processor = processors.TemplateProcessing(
            single=template, pair=pair, special_tokens=[(t, vocab[t]) for t in used])
    return backend


def word_level_tokenizer(
    words: Iterable[str] = DEFAULT_WORDS,
    special_tokens: Sequence[str] = ("<s>", "</s>", "<pad>"),
    *,
    unk_token: str = "<unk>",
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    add_bos: bool = False,
    cls_token: str | None = None,
    sep_token: str | None = None,
    mask_token: str | None = None,
    padding_side: str = "left",
    model_max_length: int = 2048,
    extra_special_tokens: dict[str, str] | None = None,
) -> PreTrainedTokenizerFast:
    """A transformers fast tokenizer over a fixed word list, built offline.

    Ids: ``unk_token`` is 0, then ``special_tokens`` in order, then ``words`` (duplicates
    dropped). Special tokens are matched in text before splitting, so ``"<image>"`` in a
    prompt is one token.

    Args:
        words: Vocabulary words and punctuation (each becomes one token).
        special_tokens: Tokens never split (BOS/EOS/PAD, image placeholders, chat markers).
        unk_token: Token of every word outside the vocabulary.
        bos_token: Beginning-of-sequence token (must be among ``special_tokens``).
        eos_token: End-of-sequence token.
        pad_token: Padding token.
        add_bos: Prepend ``bos_token`` to every encoded text (as Llama tokenizers do).
        cls_token: BERT-style ``[CLS]``; with ``sep_token``, every text is wrapped as
            ``[CLS] text [SEP]`` (the Q-Former tokenizer of InstructBLIP).
        sep_token: BERT-style ``[SEP]``.
        mask_token: BERT-style ``[MASK]``.
        padding_side: Default padding side (modprobe pads left).
        model_max_length: Longest input the tokenizer allows.
        extra_special_tokens: Named roles of special tokens that processors read off the
            tokenizer, e.g. ``{"image_token": "<image_soft_token>"}`` gives
            ``tokenizer.image_token`` and ``tokenizer.image_token_id`` (Gemma 3, Mllama).

    Returns:
        The wrapped tokenizer; ``save_pretrained`` writes a ``tokenizer.json`` that
        ``AutoTokenizer`` reloads without network.

    Raises:
        ValueError: if a named token (bos, eos, pad, cls, sep, mask) is not a special token.
    """
    named = {"bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token,
             "cls_token": cls_token, "sep_token": sep_token, "mask_token": mask_token}
    for role, token in named.items():
        if token is not None and token not in special_tokens:
            raise ValueError(f"{role} {token!r} must be one of special_tokens {list(special_tokens)}")
    if add_bos and bos_token is None:
        raise ValueError("add_bos=True needs a bos_token")
    prefix: list[str] = [bos_token] if add_bos and bos_token else []
    suffix: list[str] = []
    if cls_token and sep_token:
        prefix, suffix = [cls_token], [sep_token]
    backend = _word_level_backend(list(words), special_tokens, unk_token, prefix, suffix)
    roles = dict(extra_special_tokens or {})
    for role, token in roles.items():
        if token not in special_tokens:
            raise ValueError(f"{role} {token!r} must be one of special_tokens {list(special_tokens)}")
    extra = [t for t in special_tokens if t not in named.values()]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=unk_token,
        padding_side=padding_side,
        model_max_length=model_max_length,
        **({"extra_special_tokens": roles} if roles else {}),
        **{role: token for role, token in named.items() if token is not None},
    )
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra})
    return tokenizer
