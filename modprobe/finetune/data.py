"""Training rows for :func:`modprobe.finetune.train`: task items and their perturbed copies.

Training data are interference task items (:class:`modprobe.data.tasks.TaskItem`, a task
folder on disk: ``items.jsonl`` whose every line says which modality is ``relevant``):

* ``relevant="image"`` (image-heavy): the answer is in the image; text perturbations
  (unrelated facts, a misleading description, OCR noise) add a description;
* ``relevant="text"`` (text-heavy): the answer is in the description; image
  perturbations (random pixels, an irrelevant image, black, white) add an image.

The *relevant span* of a row, the one the attention-calibration loss pulls the answer
position's attention toward, is ``"image"`` for the first and ``"context"`` (the
description's tokens) for the second. Perturbed copies come from :mod:`modprobe.perturb`,
the one place where perturbations live; the trainer only picks which one, and with which
seed, for each row.

Every micro-batch of a run is a pure function of ``(seed, step, micro-batch)``, so a
resumed run draws exactly the batches an uninterrupted one would have drawn. The trainer
numbers micro-batches over every process (``process * grad_accum + micro``, with
``process=0`` here), so N processes draw the global batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modprobe.adapters import Prompt
from modprobe.errors import ModprobeError

#: The span that holds the answer, for each value of a task item's ``relevant`` field.
RELEVANT_SPANS: dict[str, str] = {"image": "image", "text": "context"}


class FinetuneDataError(ModprobeError, ValueError):
    """Training data cannot be used (the message names the item and the fix)."""


@dataclass
class MicroBatch:
    """The rows of one micro-batch.

    Attributes:
        clean: Clean prompts.
        perturbed: Perturbed prompts, row for row (None when no perturbation applies).
        answers: Gold answer of each row.
        relevant: Relevant span of each row (``"image"`` or ``"context"``).
        perturbations: Perturbation name of each row (empty without perturbations).
        ids: Item ids.
    """

    clean: list[Prompt]
    perturbed: list[Prompt] | None
    answers: list[str]
    relevant: list[str]
    perturbations: list[str]
    ids: list[str]


def task_items(data: Any) -> list[Any]:
    """Task items with their images opened, from a task folder, a ``TaskSet`` or a list.

    Raises:
        FinetuneDataError: the data is of no known kind, or holds no items.
        DatasetError: a task folder does not validate (every problem listed).
    """
    import os

    from modprobe.data.tasks import TaskItem, TaskSet, load_tasks

    if isinstance(data, (str, os.PathLike)):
        data = load_tasks(data)
    if isinstance(data, TaskSet):
        items = [data.open(item) for item in data.items]
    elif isinstance(data, Sequence) and all(isinstance(x, TaskItem) for x in data):
        items = list(data)
    else:
        raise FinetuneDataError(
            f"cannot train on {type(data).__name__}: pass a task folder (items.jsonl with a "
            "'relevant' field per item), a modprobe.data.tasks.TaskSet or a list of TaskItem")
    if not items:
        raise FinetuneDataError("the training data holds no items")
    unknown = sorted({str(it.relevant) for it in items} - set(RELEVANT_SPANS))
    if unknown:
        raise FinetuneDataError(f"relevant modality {unknown} unknown; use image or text")
    return items


def relevant_span(item: Any) -> str:
    """The span that holds the item's answer (``"image"`` or ``"context"``)."""
    return RELEVANT_SPANS[item.relevant]


def perturbation_options(loaded: Any) -> dict[str, Any]:
    """Options every perturbation gets: images at the size the model's processor feeds."""
    from modprobe.perturb import processor_image_size

    return {"size": processor_image_size(loaded.processor)}


def micro_batch(items: Sequence[Any], size: int, seed: int, step: int, micro: int,
                process: int, perturbations: Sequence[str],
                options: dict[str, Any] | None = None) -> MicroBatch:
    """Draw one micro-batch, a pure function of ``(seed, step, micro, process)``.

    All rows of a micro-batch share their relevant modality, so that every family can
    batch them (some cannot mix prompts with and without images). The kind is drawn in
    proportion to its share of the data; rows are drawn with replacement; each row gets
    one of the ``perturbations`` that act on its irrelevant modality, with its own seed.

    Args:
        items: The training items.
        size: Rows of the micro-batch.
        seed: The run's seed.
        step: The optimizer step.
        micro: The micro-batch's index within the step (over all processes).
        process: Kept in the seed for callers that draw per process (the trainer passes 0).
        perturbations: Names of the perturbations to draw from (empty: no perturbed rows).
        options: Keyword options of :func:`modprobe.perturb.perturb` (image size...).

    Returns:
        The :class:`MicroBatch`: clean and perturbed prompts (None without
        perturbations), answers, relevant spans, perturbation names and item ids.
    """
    from modprobe.perturb import applicable, perturb

    rng = np.random.default_rng(np.random.SeedSequence([seed, 20_261_201, step, micro, process]))
    kinds = sorted({it.relevant for it in items})
    pools = {k: [i for i, it in enumerate(items) if it.relevant == k] for k in kinds}
    shares = np.array([len(pools[k]) for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
    rows = [items[pools[kind][int(i)]] for i in rng.integers(len(pools[kind]), size=size)]
    names: list[str] = []
    perturbed: list[Prompt] | None = None
    usable = applicable(rows[0], list(perturbations)) if perturbations else []
    if usable:
        names = [usable[int(rng.integers(len(usable)))] for _ in rows]
        seeds = rng.integers(2**31 - 1, size=len(rows))
        perturbed = [perturb(it, name, seed=int(s), **(options or {})).prompt()
                     for it, name, s in zip(rows, names, seeds)]
    return MicroBatch(clean=[it.prompt() for it in rows], perturbed=perturbed,
                      answers=[it.answer for it in rows],
                      relevant=[relevant_span(it) for it in rows], perturbations=names,
                      ids=[it.id for it in rows])
