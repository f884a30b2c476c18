"""Training examples for :func:`modprobe.finetune.train`: the dataset schema plus a relevant modality.

Every item says which modality answers it (the ``relevant`` field of ``items.jsonl``):

* ``"image"`` (an image-heavy task): the clean prompt is image + question, the gold answer
  ``answer_vision``; perturbations add text (unrelated facts, a misleading description).
* ``"context"`` (a text-heavy task): the clean prompt is description + question, the gold
  answer ``answer_text``; perturbations add an image (noise, black, white, irrelevant).

The relevant span of a row is the span the calibration loss pulls the answer position's
attention toward. Perturbed prompts come from :mod:`modprobe.perturb`, the one place where
perturbations live; the trainer only picks which one, with which seed, for each row.

Every batch of a run is a pure function of ``(seed, step, micro-batch, process)``, so a
resumed run draws exactly the batches an uninterrupted one would have drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modprobe.adapters import Prompt

#: Relevant-modality names an item may carry, and the span each one names.
RELEVANT_SPANS: dict[str, str] = {"image": "image", "context": "context"}


class FinetuneDataError(ValueError):
    """Training data cannot be used (the message names the item and the fix)."""


@dataclass
class TrainExample:
    """One training item.

    Attributes:
        id: The item's id.
        item: The dataset item (what :mod:`modprobe.perturb` perturbs).
        prompt: The clean prompt.
        answer: The gold answer (one word).
        relevant: The span that holds the answer: ``"image"`` or ``"context"``.
        cluster: The item's cluster label (or None).
    """

    id: str
    item: Any
    prompt: Prompt
    answer: str
    relevant: str
    cluster: str | None = None


@dataclass
class MicroBatch:
    """The rows of one micro-batch: clean prompts, perturbed prompts, targets.

    Attributes:
        clean: Clean prompts.
        perturbed: Perturbed prompts (None when no perturbation is used).
        answers: Gold answer of each row.
        relevant: Relevant span of each row.
        perturbations: Perturbation name of each row (empty without perturbations).
        ids: Item ids.
    """

    clean: list[Prompt]
    perturbed: list[Prompt] | None
    answers: list[str]
    relevant: list[str]
    perturbations: list[str]
    ids: list[str]


def examples_from_dataset(dataset: Any) -> list[TrainExample]:
    """Training examples of a loaded dataset (``modprobe.data.load_dataset``).

    Raises:
        FinetuneDataError: an item has no ``relevant`` field or an unknown value (all such
            items are listed).
    """
    examples: list[TrainExample] = []
    problems: list[str] = []
    for item in dataset.items:
        relevant = item.extra.get("relevant")
        if relevant not in RELEVANT_SPANS:
            problems.append(f"{item.id} ({'missing' if relevant is None else repr(relevant)})")
            continue
        if relevant == "image":
            prompt = Prompt(item.question, images=[dataset.open_image(item)])
            answer = item.answer_vision
        else:
            prompt = Prompt(item.question, context=item.context)
            answer = item.answer_text
        examples.append(TrainExample(item.id, item, prompt, answer, RELEVANT_SPANS[relevant],
                                     item.extra.get("cluster")))
    if problems:
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise FinetuneDataError(
            f"dataset {dataset.root}: {len(problems)} item(s) have no usable 'relevant' field "
            f"({shown}); give each item \"relevant\": \"image\" (the answer is in the image) "
            "or \"context\" (the answer is in the description)")
    if not examples:
        raise FinetuneDataError(f"dataset {dataset.root} holds no items")
    return examples


def check_examples(examples: Sequence[TrainExample]) -> None:
    """Check that every clean prompt holds its relevant modality (before any step runs).

    Raises:
        FinetuneDataError: naming the first items whose relevant modality is absent.
    """
    missing = [ex.id for ex in examples
               if (ex.relevant == "image" and not ex.prompt.images)
               or (ex.relevant == "context" and not ex.prompt.context)]
    if missing:
        raise FinetuneDataError(
            f"{len(missing)} item(s) lack the modality they name as relevant "
            f"({', '.join(missing[:5])}); an item with relevant='image' needs an image, "
            "one with relevant='context' a description")


def perturbed_prompt(example: TrainExample, name: str, seed: int) -> Prompt:
    """The prompt of ``example`` under perturbation ``name`` with ``seed`` (modprobe.perturb)."""
    from modprobe import perturb

    return perturb.perturbed_prompt(example.item, name, seed=seed, relevant=example.relevant,
                                    prompt=example.prompt)


def applicable(perturbations: Sequence[str], relevant: str) -> list[str]:
    """The perturbations that act on the *irrelevant* modality of a row."""
    from modprobe import perturb

    return [p for p in perturbations if perturb.target_of(p) != relevant]


def micro_batch(examples: Sequence[TrainExample], size: int, seed: int, step: int,
                micro: int, process: int, perturbations: Sequence[str]) -> MicroBatch:
    """Draw one micro-batch, a pure function of ``(seed, step, micro, process)``.

    All rows of a micro-batch share their relevant modality, so every family can batch
    them (some cannot mix prompts with and without images). The kind is drawn in
    proportion to its share of the data; rows are drawn with replacement; each row gets
    one perturbation among those that act on its irrelevant modality, with its own seed.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20_261_201, step, micro, process]))
    kinds = sorted({ex.relevant for ex in examples})
    pools = {k: [i for i, ex in enumerate(examples) if ex.relevant == k] for k in kinds}
    shares = np.array([len(pools[k]) for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
    rows = [examples[pools[kind][int(i)]] for i in rng.integers(len(pools[kind]), size=size)]
    names: list[str] = []
    perturbed: list[Prompt] | None = None
    if perturbations:
        options = applicable(perturbations, kind)
        if options:
            names = [options[int(rng.integers(len(options)))] for _ in rows]
            seeds = rng.integers(2**31 - 1, size=len(rows))
            perturbed = [perturbed_prompt(ex, n, int(s)) for ex, n, s in zip(rows, names, seeds)]
    return MicroBatch(clean=[ex.prompt for ex in rows], perturbed=perturbed,
                      answers=[ex.answer for ex in rows], relevant=[ex.relevant for ex in rows],
                      perturbations=names, ids=[ex.id for ex in rows])
