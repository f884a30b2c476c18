"""Checks before a fine-tuning run: the options against the model, the data against the losses.

:func:`check_options` and :func:`check_items_fit` run before anything is written, so a
run that cannot train is refused with a one-line reason and leaves no folder behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from modprobe.errors import ModprobeError
from modprobe.finetune.checkpoint import latest_checkpoint
from modprobe.finetune.config import TrainConfig
from modprobe.finetune.data import FinetuneDataError, perturbation_options, relevant_span
from modprobe.finetune.runfolder import read_manifest
from modprobe.finetune.step import TrainBatch


class FinetuneError(ModprobeError, ValueError):
    """A fine-tuning run cannot start (the message says what to change)."""


def check_options(loaded: Any, config: TrainConfig) -> None:
    """Check the options against the model, before anything is written.

    Args:
        loaded: The :class:`modprobe.LoadedModel` to train.
        config: The run's options.

    Raises:
        FinetuneError: An option is out of range, ``--resume`` asks for fewer steps than
            the run already did, or a perturbation does not apply to this model.
        LoraTargetError: A LoRA target names no module of the model.
    """
    from modprobe.finetune.lora import resolve_targets

    try:
        config.check()
    except ValueError as err:
        raise FinetuneError(str(err)) from None
    if config.mode == "lora":
        resolve_targets(loaded, config.lora.targets)
    if config.resume:
        _check_resume_steps(Path(config.out), config.steps)
    if config.perturbations:
        from modprobe.perturb import PerturbationError, check_perturbation

        for name in config.perturbations:
            try:
                check_perturbation(name, **perturbation_options(loaded))
            except PerturbationError as err:
                raise FinetuneError(str(err)) from None


def _check_resume_steps(out: Path, steps: int) -> None:
    """Refuse ``--resume`` with fewer steps than the run already did.

    The adapter and log hold those steps; the manifest would claim fewer.
    """
    done = 0
    if (folder := latest_checkpoint(out)) is not None:
        done = int(folder.name.rsplit("-", 1)[-1])
    try:
        done = max(done, int(read_manifest(out).get("steps_done") or 0))
    except (OSError, ValueError, TypeError, AttributeError):
        pass  # no readable manifest: the run folder check says so
    if steps < done:
        raise FinetuneError(
            f"{out} already holds {done} trained steps; --resume with --steps {steps} would "
            f"record {steps} for a model trained {done}: pass --steps {done} (or more, to "
            "train further), or train a new run into another --out")


def check_items_fit(loaded: Any, items: Sequence[Any], config: TrainConfig) -> None:
    """Check the data against the model and the losses, before any step runs.

    For each kind of item (image-heavy, text-heavy) one sample batch, clean and perturbed,
    is encoded and checked by :func:`modprobe.finetune.step.check_batch` (relevant span
    present in every row, calibration layers and heads in range).

    Args:
        loaded: The :class:`modprobe.LoadedModel` to train.
        items: The training items (``TaskItem`` with a ``relevant`` modality).
        config: The run's options (batch size, perturbations, losses, seed).

    Raises:
        FinetuneError: A relevant span is unknown, no perturbation acts on a kind of
            item, or a sample batch fails the loss checks.
        FinetuneDataError: An answer has no token, or an item's relevant span is absent
            from its encoded prompt.
    """
    from modprobe.perturb import check_items_perturbable
    from modprobe.spans import SPAN_NAMES

    spans = sorted({relevant_span(it) for it in items})
    unknown = [s for s in spans if s not in SPAN_NAMES]
    if unknown:
        raise FinetuneError(f"relevant span(s) {unknown} are not spans of this modprobe "
                            f"({', '.join(SPAN_NAMES)})")
    cache: dict[str, int] = {}
    # Every answer and every text perturbation now, not when a late batch draws them.
    answer_ids(loaded.tokenizer, [it.answer for it in items], cache)
    check_items_perturbable(items, list(config.perturbations), config.seed,
                            lambda _name: perturbation_options(loaded))
    for kind in sorted({it.relevant for it in items}):
        rows = [it for it in items if it.relevant == kind][: config.batch_size]
        _check_kind(loaded, rows, kind, config, cache)


def _check_kind(loaded: Any, rows: list[Any], kind: str, config: TrainConfig,
                cache: dict[str, int]) -> None:
    """Check one sample batch of the ``kind``-heavy items, clean and perturbed."""
    from modprobe.finetune.step import check_batch
    from modprobe.perturb import applicable, perturb

    span = relevant_span(rows[0])
    batch = loaded.encode([it.prompt() for it in rows])
    present = loaded.spans(batch).mask(span).any(dim=1)
    if not bool(present.all()):
        first = rows[int((~present).nonzero()[0, 0])].id
        raise FinetuneDataError(
            f"item {first}: its relevant span {span!r} is absent from its encoded prompt "
            f"(relevant={kind!r}); give it {'an image' if kind == 'image' else 'a context'}")
    targets = answer_ids(loaded.tokenizer, [it.answer for it in rows], cache)
    samples = {"clean": [it.prompt() for it in rows]}
    usable = applicable(rows[0], list(config.perturbations)) if config.perturbations else []
    if config.perturbations and not usable:
        raise FinetuneError(
            f"no perturbation among {', '.join(config.perturbations)} acts on the "
            f"irrelevant modality of the {kind}-heavy items (e.g. {rows[0].id}); add one "
            f"that perturbs the {'image' if kind == 'text' else 'text'}")
    if usable:
        samples[usable[0]] = [perturb(it, usable[0], **perturbation_options(loaded)).prompt()
                              for it in rows]
    for label, prompts in samples.items():
        train_batch = TrainBatch(loaded.encode(prompts), targets, [span] * len(rows))
        try:
            check_batch(loaded, train_batch, config.loss, label=f"{kind}-heavy {label} batch")
        except ValueError as err:
            raise FinetuneError(str(err)) from None
        if label == "clean":
            _check_adversarial(loaded, train_batch, config, kind)
            _check_calibration(loaded, train_batch, config, kind)


def _check_calibration(loaded: Any, clean: Any, config: TrainConfig, kind: str) -> None:
    """Refuse a renormalised calibration term that would be identically 0.

    ``cross_entropy`` and ``margin`` renormalise the mass over the spans of
    ``calibration_over`` (default: the content spans). When the clean prompts hold no span
    of it but the relevant one and no perturbation adds another, the share is 1 on every
    row and the term is 0 whatever the model does.
    """
    from modprobe.finetune.losses import CONTENT_SPANS

    loss = config.loss
    if loss.calibration <= 0 or loss.calibration_kind == "neg_log_mass" or config.perturbations:
        return
    spans = loaded.spans(clean.batch)
    over = set(loss.calibration_over if loss.calibration_over is not None else CONTENT_SPANS)
    others = [name for name in sorted(over - set(clean.relevant))
              if bool(spans.mask(name).any())]
    if not others:
        raise FinetuneError(
            f"calibration={loss.calibration} with calibration_kind={loss.calibration_kind!r} "
            f"is identically 0: the clean prompts of the {kind}-heavy items hold no span of "
            f"{sorted(over)} but the relevant one and no perturbation adds one; give "
            "perturbations (--perturb) or use calibration_kind='neg_log_mass' (--calibration-kind neg_log_mass)")


def _check_adversarial(loaded: Any, clean: Any, config: TrainConfig, kind: str) -> None:
    """Refuse an adversarial term that would perturb nothing.

    The masked adversarial loss perturbs the irrelevant modality's tokens of the clean
    rows (and of the perturbed rows with ``adv_on_perturbed``). Interference tasks often
    have clean prompts without the irrelevant modality at all (an image-heavy item has no
    description until a text perturbation adds one), and then the term would silently be
    the plain answer loss.
    """
    from modprobe.finetune.adversarial import irrelevant_mask

    if config.loss.adversarial <= 0 or (config.loss.adv_on_perturbed and config.perturbations):
        return
    if not bool(irrelevant_mask(loaded.spans(clean.batch), clean.relevant).any()):
        raise FinetuneError(
            f"the adversarial loss perturbs the irrelevant modality's tokens, but the clean "
            f"prompts of the {kind}-heavy items have none (only a perturbation adds it); "
            "set LossConfig(adv_on_perturbed=True) (--adv-on-perturbed) and give perturbations")


def answer_ids(tokenizer: Any, answers: Sequence[str], cache: dict[str, int]) -> torch.Tensor:
    """The first token id of each answer, the target of the answer loss.

    Args:
        tokenizer: The model's tokenizer.
        answers: One answer string per row.
        cache: Ids found so far, by answer; filled in place.

    Returns:
        A 1-D tensor of token ids, one per answer.

    Raises:
        FinetuneDataError: An answer has no token in the vocabulary.
    """
    for answer in answers:
        if answer not in cache:
            ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
            if not ids or ids[0] == getattr(tokenizer, "unk_token_id", None):
                raise FinetuneDataError(f"answer {answer!r} has no token in the vocabulary")
            cache[answer] = int(ids[0])
    return torch.tensor([cache[a] for a in answers])
