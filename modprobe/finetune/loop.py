"""The optimizer-step loop of a fine-tuning run, on one process or several.

Each optimizer step draws ``grad_accum`` micro-batches (a pure function of the seed and
the step, so resuming draws the same ones), computes the losses with
:func:`modprobe.finetune.compute_losses` under bf16 autocast on GPU, averages gradients
over processes (``accelerate launch`` runs one per GPU), clips and steps AdamW. The main
process writes a checkpoint and the log every ``checkpoint_every`` steps.
:func:`optimizer_step` is the one step of every trainer: clip tuning
(:mod:`modprobe.finetune.clips`) gives it its own micro-batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from modprobe.finetune.checkpoint import save_checkpoint
from modprobe.finetune.checks import answer_ids
from modprobe.finetune.config import TrainConfig
from modprobe.finetune.data import MicroBatch, micro_batch, perturbation_options
from modprobe.finetune.runfolder import LOG_FILE
from modprobe.finetune.step import TERMS, TrainBatch
from modprobe.io import write_csv


@dataclass
class Optimization:
    """What the loop updates, and with what.

    Attributes:
        parameters: The trained parameters, by name.
        optimizer: Their optimizer (AdamW).
        accelerator: The ``accelerate.Accelerator`` of the run (processes, autocast).
    """

    parameters: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    accelerator: Any


def make_accelerator(config: TrainConfig, device: torch.device) -> Any:
    """The run's ``accelerate.Accelerator``.

    Args:
        config: The run's options (``precision``).
        device: The model's device.

    Returns:
        An Accelerator with bf16 mixed precision when asked for (or ``auto`` on CUDA).
    """
    from accelerate import Accelerator

    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    return Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=device.type == "cpu")


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based): linear warmup, then constant.

    Args:
        config: The run's options (``learning_rate``, ``warmup_steps``).
        step: The optimizer step, counted from 0.

    Returns:
        The learning rate.
    """
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    return config.learning_rate


def train_batches(loaded: Any, micro: MicroBatch, cache: dict[str, int]) -> tuple[Any, Any]:
    """Encode a micro-batch into the clean and perturbed :class:`TrainBatch`.

    Args:
        loaded: The :class:`modprobe.LoadedModel` being trained.
        micro: The drawn micro-batch (prompts, answers, relevant spans).
        cache: Answer token ids found so far (see :func:`answer_ids`); filled in place.

    Returns:
        ``(clean, perturbed)``; ``perturbed`` is None when the run has no perturbations.
    """
    targets = answer_ids(loaded.tokenizer, micro.answers, cache).to(loaded.device)
    clean = TrainBatch(loaded.encode(micro.clean), targets, list(micro.relevant))
    perturbed = None
    if micro.perturbed is not None:
        perturbed = TrainBatch(loaded.encode(micro.perturbed), targets, list(micro.relevant))
    return clean, perturbed


def run_steps(loaded: Any, items: list[Any], config: TrainConfig, opt: Optimization, *,
              log: list[dict[str, Any]], start: int, stepped: list[int],
              progress: bool) -> None:
    """Run optimizer steps ``start`` .. ``config.steps - 1``, with checkpoints.

    Args:
        loaded: The :class:`modprobe.LoadedModel` being trained (set to train mode for the
            loop, eval mode after).
        items: The training items.
        config: The run's options.
        opt: The parameters, optimizer and accelerator.
        log: The rows of the steps done so far; one row per step is appended.
        start: Steps already done (a resumed run's checkpoint).
        stepped: Appended each finished step, so a caller that fails knows whether any did.
        progress: Show a tqdm bar with every loss term (main process only).
    """
    from tqdm.auto import tqdm

    main = opt.accelerator.is_main_process
    out = Path(config.out)
    losses = _item_losses(loaded, items, config, opt.accelerator)
    bar = tqdm(total=config.steps, initial=start, desc="modprobe.finetune", unit="step",
               disable=not (progress and main))
    loaded.module.train()
    for step in range(start, config.steps):
        tick = time.perf_counter()
        sums = optimizer_step(config, opt, step, losses)
        row = {"step": step + 1, **{k: sums[k] for k in ("loss", *TERMS) if k in sums},
               "lr": learning_rate(config, step), "seconds": time.perf_counter() - tick}
        log.append(row)
        stepped.append(step + 1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("loss", *TERMS)})
        bar.update(1)
        done = step + 1
        if main and (done % config.checkpoint_every == 0 or done == config.steps):
            save_checkpoint(out, done, opt.parameters, opt.optimizer, log,
                            keep=config.keep_checkpoints)
            write_csv(out / LOG_FILE, pd.DataFrame(log))
    bar.close()
    loaded.module.eval()


def _item_losses(loaded: Any, items: list[Any], config: TrainConfig,
                 accelerator: Any) -> Callable[[int, int], dict[str, torch.Tensor]]:
    """The loss terms of a task-item micro-batch (clean and perturbed), by step and index."""
    from modprobe.finetune.step import compute_losses

    cache: dict[str, int] = {}
    options = perturbation_options(loaded)

    def _losses(step: int, index: int) -> dict[str, torch.Tensor]:
        batch = micro_batch(items, config.batch_size, config.seed, step, index, 0,
                            config.perturbations, options)
        clean, perturbed = train_batches(loaded, batch, cache)
        with accelerator.autocast():
            return compute_losses(loaded, clean, perturbed, config.loss)

    return _losses


def optimizer_step(config: TrainConfig, opt: Optimization, step: int,
                   losses: Callable[[int, int], dict[str, torch.Tensor]]) -> dict[str, float]:
    """One optimizer step over ``grad_accum`` micro-batches.

    Sets the step's learning rate, backpropagates each micro-batch's ``loss`` divided by
    ``grad_accum``, averages gradients over processes, clips them and steps the optimizer.

    Args:
        config: The run's options (``grad_accum``, ``grad_clip``, the learning rate).
        opt: The parameters, optimizer and accelerator.
        step: The optimizer step, counted from 0.
        losses: Draws and encodes micro-batch ``index`` of ``step`` and returns its loss
            terms (``"loss"``, the weighted total, is backpropagated): called as
            ``losses(step, index)``.

    Returns:
        The mean of each loss term over the step's micro-batches (and processes).
    """
    accelerator, parameters = opt.accelerator, list(opt.parameters.values())
    for group in opt.optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    opt.optimizer.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    for micro in range(config.grad_accum):
        # The global batch of a step is micro-batches 0..processes*grad_accum-1, drawn
        # by their index alone: N processes with grad_accum A train on the same batches
        # as one process with grad_accum N*A (docs/scale.md).
        index = accelerator.process_index * config.grad_accum + micro
        terms = losses(step, index)
        accelerator.backward(terms["loss"] / config.grad_accum)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) / config.grad_accum
    if accelerator.num_processes > 1:
        # Averaging gradients by hand keeps the model unwrapped (the capture traces the
        # module itself); LoRA gradients are small, so this costs little.
        average_gradients(accelerator, parameters)
        sums = {k: float(accelerator.reduce(torch.tensor(v, device=accelerator.device),
                                            reduction="mean")) for k, v in sums.items()}
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
    opt.optimizer.step()
    return sums


def broadcast_parameters(accelerator: Any, parameters: Sequence[torch.nn.Parameter]) -> None:
    """Give every process process 0's values of ``parameters`` (one broadcast).

    Args:
        accelerator: The run's ``accelerate.Accelerator``.
        parameters: The parameters to make equal across processes; copied in place.
    """
    from accelerate.utils import broadcast

    if not parameters:
        return
    flat = broadcast(torch.cat([p.detach().reshape(-1) for p in parameters]), from_process=0)
    offset = 0
    with torch.no_grad():
        for p in parameters:
            p.copy_(flat[offset:offset + p.numel()].view(p.shape))
            offset += p.numel()


def average_gradients(accelerator: Any, parameters: Sequence[torch.nn.Parameter]) -> None:
    """Average the gradients of ``parameters`` over processes with one all-reduce.

    Every process sends the same flat tensor (a parameter without a gradient, e.g. one
    its batch kind did not reach, counts as zeros), so processes whose batches differ
    cannot wait on different collectives. A parameter that no process gave a gradient
    keeps ``grad=None`` (the optimizer skips it, as in a single process).

    Args:
        accelerator: The run's ``accelerate.Accelerator`` (its ``reduce`` and process count).
        parameters: The trained parameters; their ``grad`` is replaced by the mean.
    """
    if not parameters:
        return
    device = parameters[0].device
    flat = torch.cat(
        [(p.grad.detach().float() if p.grad is not None
          else torch.zeros(p.shape, dtype=torch.float32, device=device)).reshape(-1).to(device)
         for p in parameters]
        + [torch.tensor([float(p.grad is not None) for p in parameters], device=device)])
    total = accelerator.reduce(flat, reduction="sum")
    had = total[-len(parameters):].tolist()
    offset = 0
    for index, p in enumerate(parameters):
        size = p.numel()
        if had[index] > 0:
            mean = total[offset:offset + size] / accelerator.num_processes
            p.grad = mean.view(p.shape).to(device=p.device, dtype=p.dtype)
        offset += size
