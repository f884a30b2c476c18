"""Fine-tune a model: LoRA or full, accelerate, checkpoints, resume, a run folder.

```python
import modprobe
from modprobe.finetune import LossConfig, TrainConfig, train

lm = modprobe.load("organism")
result = train(lm, "data/interference", TrainConfig(out="runs/ft", loss=LossConfig(calibration=1.0)))
tuned = modprobe.load("runs/ft")          # base + adapter, ready for capture and the runners
```

:func:`train` checks the options and the data (:mod:`modprobe.finetune.checks`), prepares
the run folder (:mod:`modprobe.finetune.runfolder`: manifest, log, checkpoints, model), sets
up the trained parameters and runs the optimizer steps (:mod:`modprobe.finetune.loop`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from modprobe.data.split import EVAL_DIR
from modprobe.determinism import deterministic_torch
from modprobe.finetune.checkpoint import latest_checkpoint, load_checkpoint
from modprobe.finetune.checks import (
    FinetuneError,
    answer_ids,
    check_items_fit,
    check_options,
)
from modprobe.finetune.config import TrainConfig
from modprobe.finetune.data import FinetuneDataError, task_items
from modprobe.finetune.loop import (
    Optimization,
    average_gradients,
    broadcast_parameters,
    learning_rate,
    make_accelerator,
    run_steps,
    train_batches,
)
from modprobe.finetune.lora import apply_lora, trainable_parameters
from modprobe.finetune.runfolder import (
    LOG_FILE,
    MODEL_DIR,
    RUN_KIND,
    base_name,
    data_fingerprint,
    data_name,
    prepare_folder,
    read_log,
    read_manifest,
    save_model,
)
from modprobe.io import write_csv, write_json

# The names this module defined before it was split, for code that imports them from here.
_answer_ids = answer_ids
_train_batches = train_batches
_learning_rate = learning_rate
_accelerator = make_accelerator
_data_name = data_name
_data_fingerprint = data_fingerprint

__all__ = [
    "LOG_FILE",
    "MODEL_DIR",
    "RUN_KIND",
    "FinetuneError",
    "TrainResult",
    "average_gradients",
    "base_name",
    "broadcast_parameters",
    "check_items_fit",
    "check_options",
    "read_log",
    "read_manifest",
    "save_model",
    "train",
]


@dataclass
class TrainResult:
    """What :func:`train` produced (also on disk in the run folder).

    Attributes:
        out: The run folder.
        model: The trained model (the input ``LoadedModel``'s module, trained in place).
        log: One row per optimizer step.
        steps: Optimizer steps done.
        seconds: Wall time of this call's steps.
        trainable: Number of trained parameters.
        heldout: What was held out for evaluation (a line), or "" without a split.
    """

    out: Path
    model: Any
    log: pd.DataFrame
    steps: int
    seconds: float
    trainable: int
    heldout: str = ""


def train(loaded: Any, data: Any, config: TrainConfig, *, eval_data: Any = None,
          progress: bool = True) -> TrainResult:
    """Fine-tune ``loaded`` on ``data`` and write the run folder ``config.out``.

    Args:
        loaded: A :class:`modprobe.LoadedModel`; its module is trained in place (LoRA
            layers are injected into it in LoRA mode).
        data: A task folder (``items.jsonl`` with a ``relevant`` field per item, see
            ``modprobe.data.tasks``), a ``TaskSet``, a list of ``TaskItem``, or None:
            generate the color world's image-heavy and text-heavy tasks into ``RUN/data``
            (:mod:`modprobe.finetune.world`).
        config: The options.
        eval_data: Evaluation items (same kinds as ``data``); none may share content
            with a training item. None: hold out ``config.holdout`` of the data's
            clusters (:mod:`modprobe.data.split`). The held-out items are written
            to ``RUN/eval`` and their content keys to ``RUN/split.json``.
        progress: Show a tqdm bar with every loss term.

    Returns:
        The :class:`TrainResult`.

    Raises:
        FinetuneError, FinetuneDataError, LoraTargetError: bad input, before any step runs
            and before anything is written.
        StudyError: the run folder exists (without ``resume``) or does not match: other
            options, or data or base weights whose fingerprints changed
            (``modprobe.study.runfolder``, the rule every runner follows).
    """
    from modprobe.finetune.world import world_items

    if getattr(loaded, "remote", False):
        raise FinetuneError("fine-tuning needs the model's weights here: NDIF (and "
                            "modprobe.load(remote=...)) runs traces, not optimizer steps; "
                            "load the model without remote= to fine-tune it")
    items = task_items(data) if data is not None else world_items(loaded, seed=config.seed)
    check_options(loaded, config)
    split = _split(items, eval_data, config)
    everything = items  # the data's fingerprint covers every item, held-out ones too
    if split is not None:
        items = split.train
    check_items_fit(loaded, items, config)
    out = Path(config.out)
    options = {"base": base_name(loaded), "data": data_name(data), **config.options()}
    accelerator = make_accelerator(config, loaded.device)
    # A new run that fails before its first step leaves no folder behind.
    created = accelerator.is_main_process and not config.resume and not out.exists()
    stepped: list[int] = []
    try:
        result = _prepare_and_train(loaded, data, items, config, out, options, accelerator,
                                    progress, stepped, split, everything)
    except BaseException:
        if created and not stepped and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        raise
    if split is not None:
        result.heldout = (f"held out for evaluation: {len(split.eval)} items in "
                          f"{out / EVAL_DIR} (none shares content with the {len(split.train)} "
                          f"training items; {len(split.dropped)} duplicates dropped)")
    return result


def _split(items: list[Any], eval_data: Any, config: TrainConfig) -> Any:
    """The train / held-out split (None: train on everything, no evaluation set)."""
    from modprobe.data.split import HeldOutError, given_split, split_items

    try:
        if eval_data is not None:
            return given_split(items, task_items(eval_data))
        if config.holdout > 0:
            return split_items(items, config.holdout, config.seed)
    except HeldOutError as err:
        raise FinetuneDataError(str(err)) from None
    return None


def _prepare_and_train(loaded: Any, data: Any, items: list[Any], config: TrainConfig, out: Path,
                       options: dict[str, Any], accelerator: Any, progress: bool,
                       stepped: list[int], split: Any, everything: list[Any]) -> TrainResult:
    """Prepare the run folder on the main process, share its manifest, then train."""
    outcome: list[Any] = [None]
    if accelerator.is_main_process:  # one process writes the run folder
        try:
            outcome = [prepare_folder(loaded, data, config, options, split, everything)]
        except Exception as err:
            if accelerator.num_processes == 1:
                raise
            outcome = [err]
    if accelerator.num_processes > 1:  # the others learn the manifest, or the refusal
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(outcome, from_process=0)
    accelerator.wait_for_everyone()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    manifest = outcome[0]
    # One seed per process (adversarial starts, dropout); process 0 keeps `seed`.
    with deterministic_torch(config.seed + accelerator.process_index, config.threads):
        return _train(loaded, items, config, out, manifest, progress, accelerator, stepped)


def _train(loaded: Any, items: list[Any], config: TrainConfig, out: Path,
           manifest: dict[str, Any], progress: bool, accelerator: Any,
           stepped: list[int]) -> TrainResult:
    """Set up the trained parameters, run the steps, save the model and the manifest."""
    from nnsight import NNsight

    peft_model = None
    if config.mode == "lora":
        peft_model = apply_lora(loaded, config.lora, manifest["options"]["base"])
    else:
        for parameter in loaded.module.parameters():
            parameter.requires_grad_(True)
    # A fresh nnsight wrapper sees the LoRA layers; module paths are unchanged.
    loaded = dataclasses.replace(loaded, model=NNsight(loaded.module))
    parameters = trainable_parameters(loaded.module)
    if accelerator.num_processes > 1:
        # Every process drew its LoRA initialisation from its own seed; the replicas must
        # start equal (as DDP makes them), so all take process 0's weights.
        broadcast_parameters(accelerator, list(parameters.values()))
    optimizer = torch.optim.AdamW(parameters.values(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    log: list[dict[str, Any]] = []
    start = 0
    if config.resume and (folder := latest_checkpoint(out)) is not None:
        state = load_checkpoint(folder, parameters, optimizer)
        start, log = state.step, state.log
    main = accelerator.is_main_process
    trainable = sum(p.numel() for p in parameters.values())
    if main:
        manifest.update({"kind": RUN_KIND, "family": loaded.adapter.family,
                         "trainable_parameters": trainable,
                         "n_items": len(items), "processes": accelerator.num_processes,
                         "mixed_precision": accelerator.mixed_precision, "status": "running"})
        write_json(out / "manifest.json", manifest)
    began = time.perf_counter()
    run_steps(loaded, items, config, Optimization(parameters, optimizer, accelerator),
              log=log, start=start, stepped=stepped, progress=progress)
    seconds = time.perf_counter() - began
    if main:
        save_model(loaded, peft_model, out / MODEL_DIR)
        write_csv(out / LOG_FILE, pd.DataFrame(log))
        manifest.update({"status": "complete", "steps_done": config.steps,
                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write_json(out / "manifest.json", manifest)
    accelerator.wait_for_everyone()
    return TrainResult(out=out, model=loaded, log=pd.DataFrame(log), steps=config.steps,
                       seconds=seconds, trainable=trainable)
