"""Where the organism's tokenizer, processor, training stream and probe sets come from.

Everything here delegates to the shared builders: the tokenizer and processor to
:mod:`modprobe.testing`, the images and texts to the low-resolution variant of the color
generator (:mod:`modprobe.data.lowres`). The organism only decides the mixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tokenizers import normalizers

from modprobe.adapters import Prompt
from modprobe.data.lowres import (
    LOWRES_TEXT_TIERS,
    LOWRES_TIERS,
    TrainingExample,
    iter_training_examples,
    lowres_vocabulary,
    sample_lowres_item,
)
from modprobe.organism.config import OrganismConfig
from modprobe.testing import build_llava_processor, llama_tokenizer

#: Words of the chat scaffold ("USER: <image>\n... ASSISTANT:"), lower-cased like all text.
CHAT_WORDS: tuple[str, ...] = ("user", "assistant", ":", "\n")

#: Names of the text tiers lt of the lowres generator, for logs and plots.
TEXT_TIER_NAMES: dict[int, str] = {
    0: "direct", 1: "one_hop", 2: "world", 3: "hedged2", 4: "two_color", 5: "hedged3"}


@dataclass
class LabelledPrompt:
    """One prompt with the answers that count as correct (several for a hedged text).

    Attributes:
        prompt: The model input.
        target: The answer word trained on (one of ``answers``).
        answers: Every answer the item accepts.
        condition: ``"vision"``, ``"text"`` or ``"multi"``.
    """

    prompt: Prompt
    target: str
    answers: tuple[str, ...]
    condition: str


def organism_words() -> list[str]:
    """The organism's vocabulary: the lowres generator's words, split as the tokenizer splits.

    The word-level tokenizer isolates punctuation, so ``'s`` becomes ``'`` + ``s`` and
    ``four-leaf`` becomes ``four`` + ``-`` + ``leaf``; text is lower-cased before
    splitting (see :func:`build_processor`), as the generator's vocabulary is.
    """
    splitter = llama_tokenizer(()).backend_tokenizer.pre_tokenizer
    pieces = [piece for word in (*lowres_vocabulary(), *CHAT_WORDS)
              for piece, _ in splitter.pre_tokenize_str(word)]
    return list(dict.fromkeys([*pieces, "\n"]))


def build_processor(config: OrganismConfig) -> object:
    """A LLaVA processor over the organism's vocabulary, images of ``config.image_size``."""
    tokenizer = llama_tokenizer(tuple(organism_words()))
    # The generator's vocabulary is lower-case ("The" and "the" are one word); special
    # tokens (<image>, <s>, ...) are matched before normalisation and keep their case.
    tokenizer.backend_tokenizer.normalizer = normalizers.Lowercase()
    return build_llava_processor(tokenizer, config.image_size, config.patch_size)


def labelled(example: TrainingExample) -> LabelledPrompt:
    """A generator example as a prompt for modprobe's adapter."""
    prompt = Prompt(example.question, context=example.context,
                    images=[example.image] if example.image is not None else [])
    return LabelledPrompt(prompt, example.answer, tuple(example.answer_options),
                          example.condition)


def training_stream(config: OrganismConfig) -> Iterator[LabelledPrompt]:
    """The endless, seed-determined stream of unimodal and agreeing examples (no conflicts)."""
    for example in iter_training_examples(
            config.seed, vis_tiers=config.vis_tiers, text_tiers=config.text_tiers,
            weights=config.condition_weights):
        yield labelled(example)


def probe_sets(config: OrganismConfig) -> dict[str, list[LabelledPrompt]]:
    """Held-out probe sets: vision-only per visual tier, text-only per text tier.

    Drawn from ``config.probe_seed`` (never the training stream's seed), ``probe_items``
    per set; a text-only item accepts any color its description allows.
    """
    sets: dict[str, list[LabelledPrompt]] = {}
    for level in range(len(LOWRES_TIERS)):
        rng = np.random.default_rng(np.random.SeedSequence([config.probe_seed, 1, level]))
        items = [sample_lowres_item(rng, level, 0, kind="agree") for _ in range(config.probe_items)]
        sets[f"vision/lv{level}"] = [
            LabelledPrompt(Prompt(it.question, images=[it.image]), it.answer_vision,
                           (it.answer_vision,), "vision") for it in items]
    for level in LOWRES_TEXT_TIERS:
        rng = np.random.default_rng(np.random.SeedSequence([config.probe_seed, 2, level]))
        items = [sample_lowres_item(rng, 0, level, kind="agree") for _ in range(config.probe_items)]
        sets[f"text/{TEXT_TIER_NAMES[level]}"] = [
            LabelledPrompt(Prompt(it.question, context=it.context), it.answer_text,
                           tuple(it.answer_text_options), "text") for it in items]
    return sets
