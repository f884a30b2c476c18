"""Fine-tune an audio-visual model on clip questions (``modprobe.data.clips_items``).

The interference trainer (:func:`modprobe.finetune.train`) takes image/text task items;
this is its counterpart for MMA clip questions, with the same per-step losses
(:func:`modprobe.finetune.compute_losses`) and LoRA settings (:class:`modprobe.finetune.LoraSettings`):

* ``answer``: cross-entropy of the answer-position logits against the class of the
  modality the question names (under a conflict: the picture's class for a visual
  question, the sound's for an audio one);
* ``calibration``: :func:`modprobe.finetune.attention_calibration_loss` toward the span of
  that modality: ``"audio"`` for an audio question, the frames' span (``"image"`` with
  ``visual="image"``, ``"video"`` with ``visual="video"``) for a visual one.

```python
import modprobe
from modprobe.finetune import LossConfig, TrainConfig
from modprobe.finetune.clips import train_clips

lm = modprobe.load("av-organism-shortcut")
items = ...                                  # ClipItems, conflicts included
result = train_clips(lm, items, TrainConfig(out="runs/av-tune", steps=150, batch_size=16,
                     learning_rate=2e-3, loss=LossConfig(calibration=1.0)))
tuned = modprobe.load("runs/av-tune")        # base + LoRA adapter, for `modprobe mma`
```

The run folder has the interference trainer's layout (``manifest.json`` of kind
``finetune`` with the versions and the base model's fingerprint, ``log.csv``, ``model/``
with the adapter and the processor), so ``modprobe.load(RUN)`` and ``modprobe mma --model
RUN`` load the tuned model. Each step is the trainer's optimizer step
(:func:`modprobe.finetune.loop.optimizer_step`) on rows that are a pure function of
``(seed, step)``. Runs are short (minutes on a CPU), so there are no intermediate
checkpoints and no resume: an interrupted run removes its folder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modprobe.determinism import deterministic_torch
from modprobe.finetune import FinetuneError, TrainBatch, TrainConfig, compute_losses
from modprobe.finetune.checks import answer_ids
from modprobe.finetune.loop import Optimization, learning_rate, make_accelerator, optimizer_step
from modprobe.finetune.lora import apply_lora, trainable_parameters
from modprobe.finetune.trainer import LOG_FILE, MODEL_DIR, RUN_KIND, base_name, save_model
from modprobe.io import write_csv, write_json
from modprobe.study.folder_checks import MANIFEST

#: The span a question's answer lives in, per asked modality (``visual`` depends on how
#: the frames are shown: see :func:`relevant_clip_span`).
ASKS: tuple[str, ...] = ("visual", "audio")
#: Trainer options that clip tuning does not use (no held-out split, no checkpoints),
#: left out of its manifest.
_NOT_CLIP_OPTIONS = ("holdout", "checkpoint_every", "keep_checkpoints")


@dataclass
class ClipTuneResult:
    """What :func:`train_clips` produced (also on disk in the run folder).

    Attributes:
        out: The run folder.
        model: The tuned model (the input ``LoadedModel``, LoRA layers inside).
        log: One row per optimizer step (``step, loss`` and each enabled term, ``lr``).
        seconds: Wall time of the steps.
        trainable: Number of trained parameters.
    """

    out: Path
    model: Any
    log: pd.DataFrame
    seconds: float
    trainable: int


def relevant_clip_span(ask: str, visual: str = "image") -> str:
    """The span holding the answer of a clip question.

    Args:
        ask: ``"visual"`` or ``"audio"``.
        visual: How the frames are shown (``"image"``: the middle frame, ``"video"``).

    Returns:
        ``"audio"`` for an audio question, else ``visual``'s span.
    """
    if ask not in ASKS:
        raise ValueError(f"ask must be one of {', '.join(ASKS)}, not {ask!r}")
    if visual not in ("image", "video"):
        raise ValueError(f"visual must be 'image' or 'video', not {visual!r}")
    return "audio" if ask == "audio" else visual


def clip_batch(loaded: Any, items: Sequence[Any], visual: str = "image",
               cache: dict[str, int] | None = None) -> TrainBatch:
    """Encode clip questions as one :class:`modprobe.finetune.TrainBatch`.

    Args:
        loaded: The model (its adapter encodes the prompts).
        items: :class:`modprobe.data.clips_items.ClipItem` rows.
        visual: How the frames are shown (``ClipItem.prompt``'s ``visual``).
        cache: Answer token ids found so far (:func:`modprobe.finetune.checks.answer_ids`).

    Returns:
        The encoded rows, their gold answers' token ids and relevant spans.

    Raises:
        FinetuneDataError: a gold answer has no token in the vocabulary.
    """
    batch = loaded.encode([it.prompt(visual) for it in items])
    targets = answer_ids(loaded.tokenizer, [it.gold for it in items],
                         {} if cache is None else cache)
    return TrainBatch(batch, targets.to(loaded.device),
                      [relevant_clip_span(it.ask, visual) for it in items])


def draw_rows(n_items: int, size: int, seed: int, step: int) -> np.ndarray:
    """Indices of one step's rows (with replacement), a pure function of ``(seed, step)``.

    Args:
        n_items: Number of items the rows index.
        size: Rows per step (the batch size).
        seed: The run's seed.
        step: The training step, from 0.

    Returns:
        ``size`` indices in ``[0, n_items)``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20_261_207, step]))
    return rng.integers(n_items, size=size)


def _check(loaded: Any, items: Sequence[Any], config: TrainConfig, visual: str) -> None:
    """Every option and the first batch, before anything is written."""
    from modprobe.finetune import check_batch
    from modprobe.finetune.checks import check_options

    if config.mode != "lora":
        raise FinetuneError("clip fine-tuning trains LoRA adapters only (mode='lora')")
    if config.perturbations or config.resume or config.grad_accum != 1:
        raise FinetuneError("clip fine-tuning takes no perturbations, resume or grad_accum: "
                            "put conflicts in the items themselves")
    check_options(loaded, config)  # the trainer's checks: ranges, LoRA targets
    if not items:
        raise FinetuneError("no clip items to train on")
    first = [items[i] for i in draw_rows(len(items), config.batch_size, config.seed, 0)]
    try:
        check_batch(loaded, clip_batch(loaded, first, visual), config.loss, label="clip batch")
    except ValueError as err:
        raise FinetuneError(str(err)) from None


def train_clips(loaded: Any, items: Sequence[Any], config: TrainConfig, *,
                visual: str = "image",
                progress: Callable[[dict[str, float]], None] | None = None) -> ClipTuneResult:
    """LoRA-tune ``loaded`` on clip questions and write the run folder ``config.out``.

    Args:
        loaded: A :class:`modprobe.LoadedModel` (trained in place: LoRA layers are
            injected into its module).
        items: Training :class:`~modprobe.data.clips_items.ClipItem` rows; their ``gold``
            (the class of the asked modality) is the label.
        config: Steps, batch size, learning rate, LoRA settings, loss weights, seed,
            threads (``perturbations``, ``grad_accum`` and ``resume`` are the interference
            trainer's and must stay at their defaults; ``holdout`` and the checkpoint
            options do not apply).
        visual: How the frames are shown (``"image"`` or ``"video"``).
        progress: Called with each step's log row.

    Returns:
        The :class:`ClipTuneResult`.

    Raises:
        FinetuneError / LoraTargetError: bad options or items, before anything is written.
        ModprobeError: ``config.out`` is not an empty (or new) folder.
    """
    from nnsight import NNsight

    from modprobe.checks import check_out
    from modprobe.study.runfolder import mark_complete, undo_new_run

    _check(loaded, items, config, visual)
    out = check_out(config.out, what="fine-tuning run")
    created = not out.exists()
    accelerator = make_accelerator(config, loaded.device)  # one process, no autocast
    try:
        manifest = _prepare_folder(loaded, items, config, visual, out)
        with deterministic_torch(config.seed, config.threads):
            peft_model = apply_lora(loaded, config.lora, manifest["options"]["base"])
            loaded = dataclasses.replace(loaded, model=NNsight(loaded.module))
            parameters = trainable_parameters(loaded.module)
            optimizer = torch.optim.AdamW(parameters.values(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
            manifest["trainable_parameters"] = sum(p.numel() for p in parameters.values())
            write_json(out / MANIFEST, manifest)
            opt = Optimization(parameters, optimizer, accelerator)
            log, seconds = _steps(loaded, items, config, visual, opt, progress)
        loaded.module.eval()
        save_model(loaded, peft_model, out / MODEL_DIR)
    except BaseException:
        # Clip runs do not resume: an unfinished folder would only block the rerun.
        undo_new_run(out, created)
        raise
    frame = pd.DataFrame(log)
    write_csv(out / LOG_FILE, frame)
    manifest.update({"steps_done": config.steps, "seconds": round(seconds, 1)})
    mark_complete(out, manifest)
    return ClipTuneResult(out=out, model=loaded, log=frame, seconds=seconds,
                          trainable=int(manifest["trainable_parameters"]))


def _prepare_folder(loaded: Any, items: Sequence[Any], config: TrainConfig, visual: str,
                    out: Path) -> dict[str, Any]:
    """Create the run folder (:func:`modprobe.study.runfolder.prepare_run_folder`).

    The manifest records the versions and the base model's fingerprint like every run
    folder's, and the options that apply to clip tuning.
    """
    from modprobe.study.runfolder import model_fingerprint, prepare_run_folder

    options = {"base": base_name(loaded), "visual": visual, "n_items": len(items),
               **{k: v for k, v in config.options().items() if k not in _NOT_CLIP_OPTIONS}}
    manifest = prepare_run_folder(out, options, resume=False, resume_keys=(), kind=RUN_KIND,
                                  fingerprints={"model": model_fingerprint(loaded.module)})
    manifest.update({"data": "clip items", "family": loaded.adapter.family})
    return manifest


def _steps(loaded: Any, items: Sequence[Any], config: TrainConfig, visual: str,
           opt: Optimization, progress: Callable[[dict[str, float]], None] | None
           ) -> tuple[list[dict[str, float]], float]:
    """The optimizer steps (the trainer's :func:`~modprobe.finetune.loop.optimizer_step`)."""
    log: list[dict[str, float]] = []
    began = time.perf_counter()
    loaded.module.train()
    cache: dict[str, int] = {}

    def _losses(step: int, index: int) -> dict[str, torch.Tensor]:
        # One micro-batch per step (grad_accum 1): the rows depend on the step alone.
        rows = [items[i] for i in draw_rows(len(items), config.batch_size, config.seed, step)]
        return compute_losses(loaded, clip_batch(loaded, rows, visual, cache), None,
                              config.loss)

    for step in range(config.steps):
        row = {"step": step + 1, **optimizer_step(config, opt, step, _losses),
               "lr": learning_rate(config, step)}
        log.append(row)
        if progress is not None:
            progress(row)
    return log, time.perf_counter() - began


__all__ = ["ASKS", "ClipTuneResult", "clip_batch", "draw_rows",
           "relevant_clip_span", "train_clips"]
