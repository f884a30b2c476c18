"""The fine-tuning loop: LoRA or full, accelerate, checkpoints, resume, a run folder.

```python
import modprobe
from modprobe.finetune import LossConfig, TrainConfig, train

lm = modprobe.load("organism")
result = train(lm, "data/interference", TrainConfig(out="runs/ft", loss=LossConfig(calibration=1.0)))
tuned = modprobe.load("runs/ft")          # base + adapter, ready for capture and the runners
```

Run folder::

    RUN/manifest.json              options, versions, base model, status
    RUN/log.csv                    one row per optimizer step: every loss term, lr, time
    RUN/checkpoints/step-NNNNNNN/  the last checkpoints (safetensors + JSON, see checkpoint.py)
    RUN/model/                     save_pretrained: the LoRA adapter (adapter_config.json +
                                   adapter_model.safetensors) or the full model, + processor

Each optimizer step draws ``grad_accum`` micro-batches (a pure function of the seed and
the step, so resuming draws the same ones), computes the losses with
:func:`modprobe.finetune.compute_losses` under bf16 autocast on GPU, averages gradients
over processes (``accelerate launch`` runs one per GPU), clips and steps AdamW.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from modprobe.data.split import EVAL_DIR
from modprobe.determinism import deterministic_torch
from modprobe.errors import ModprobeError
from modprobe.finetune.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from modprobe.finetune.config import TrainConfig
from modprobe.finetune.data import (
    FinetuneDataError,
    MicroBatch,
    micro_batch,
    perturbation_options,
    relevant_span,
    task_items,
)
from modprobe.finetune.lora import apply_lora, trainable_parameters
from modprobe.finetune.step import TERMS, TrainBatch
from modprobe.io import write_csv, write_json

#: Kind of run recorded in the manifest; ``modprobe.load`` recognises it.
RUN_KIND = "finetune"
MODEL_DIR = "model"
LOG_FILE = "log.csv"
#: Options that change the trajectory: a resumed run must use the same values.
_RESUME_KEYS = ("base", "data", "holdout", "batch_size", "grad_accum", "learning_rate", "warmup_steps",
                "weight_decay", "grad_clip", "mode", "lora", "loss", "perturbations", "seed",
                "precision", "threads")


class FinetuneError(ModprobeError, ValueError):
    """A fine-tuning run cannot start (the message says what to change)."""


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


def base_name(loaded: Any) -> str:
    """What ``modprobe.load`` takes to rebuild the base model: the alias, or an absolute path."""
    from modprobe.loading import ALIASES, LOCAL_ALIASES

    if loaded.name in ALIASES or loaded.name in LOCAL_ALIASES:
        return str(loaded.name)
    source = Path(loaded.source)
    return str(source.resolve()) if source.is_dir() else str(loaded.source)


def check_options(loaded: Any, config: TrainConfig) -> None:
    """Checks of the options against the model, before anything is written.

    Raises:
        FinetuneError / LoraTargetError: with a one-line reason.
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
    """Refuse ``--resume`` with fewer steps than the run already did (the adapter and log
    hold those steps; the manifest would claim fewer)."""
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
    """Checks of the data against the model and the losses, before any step runs.

    For each kind of item (image-heavy, text-heavy) one sample batch, clean and perturbed,
    is encoded and checked by :func:`modprobe.finetune.step.check_batch` (relevant span
    present in every row, calibration layers and heads in range).

    Raises:
        FinetuneError / FinetuneDataError: with a one-line reason.
    """
    from modprobe.finetune.step import check_batch
    from modprobe.perturb import applicable, check_items_perturbable, perturb
    from modprobe.spans import SPAN_NAMES

    spans = sorted({relevant_span(it) for it in items})
    unknown = [s for s in spans if s not in SPAN_NAMES]
    if unknown:
        raise FinetuneError(f"relevant span(s) {unknown} are not spans of this modprobe "
                            f"({', '.join(SPAN_NAMES)})")
    cache: dict[str, int] = {}
    # Every answer and every text perturbation now, not when a late batch draws them.
    _answer_ids(loaded.tokenizer, [it.answer for it in items], cache)
    check_items_perturbable(items, list(config.perturbations), config.seed,
                            lambda _name: perturbation_options(loaded))
    for kind in sorted({it.relevant for it in items}):
        rows = [it for it in items if it.relevant == kind][: config.batch_size]
        span = relevant_span(rows[0])
        batch = loaded.encode([it.prompt() for it in rows])
        present = loaded.spans(batch).mask(span).any(dim=1)
        if not bool(present.all()):
            first = rows[int((~present).nonzero()[0, 0])].id
            raise FinetuneDataError(
                f"item {first}: its relevant span {span!r} is absent from its encoded prompt "
                f"(relevant={kind!r}); give it {'an image' if kind == 'image' else 'a context'}")
        targets = _answer_ids(loaded.tokenizer, [it.answer for it in rows], cache)
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


def _answer_ids(tokenizer: Any, answers: Sequence[str], cache: dict[str, int]) -> torch.Tensor:
    for answer in answers:
        if answer not in cache:
            ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
            if not ids or ids[0] == getattr(tokenizer, "unk_token_id", None):
                raise FinetuneDataError(f"answer {answer!r} has no token in the vocabulary")
            cache[answer] = int(ids[0])
    return torch.tensor([cache[a] for a in answers])


def _train_batches(loaded: Any, micro: MicroBatch, cache: dict[str, int]) -> tuple[Any, Any]:
    targets = _answer_ids(loaded.tokenizer, micro.answers, cache).to(loaded.device)
    clean = TrainBatch(loaded.encode(micro.clean), targets, list(micro.relevant))
    perturbed = None
    if micro.perturbed is not None:
        perturbed = TrainBatch(loaded.encode(micro.perturbed), targets, list(micro.relevant))
    return clean, perturbed


def _learning_rate(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    return config.learning_rate


def _accelerator(config: TrainConfig, device: torch.device) -> Any:
    from accelerate import Accelerator

    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    return Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=device.type == "cpu")


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
    options = {"base": base_name(loaded), "data": _data_name(data), **config.options()}
    accelerator = _accelerator(config, loaded.device)
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
    from modprobe.finetune.world import write_world_data
    from modprobe.study.runfolder import model_fingerprint, prepare_run_folder

    outcome: list[Any] = [None]
    if accelerator.is_main_process:  # one process writes the run folder
        try:
            fingerprints = {"model": model_fingerprint(loaded.module)}
            data_print = _data_fingerprint(data, everything)
            if data_print is not None:
                fingerprints["data"] = data_print
            manifest = prepare_run_folder(out, options, resume=config.resume,
                                          resume_keys=_RESUME_KEYS, kind=RUN_KIND,
                                          fingerprints=fingerprints)
            if data is None:  # the generated items, on disk for the record (kept on resume)
                write_world_data(out / "data", loaded, seed=config.seed)
            if split is not None:
                from modprobe.data.split import write_split

                write_split(out, split, {"task": "held-out items of a fine-tuning run"})
                manifest["split"] = split.summary()
            outcome = [manifest]
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


def _data_name(data: Any) -> str | None:
    if isinstance(data, (str, os.PathLike)):
        return str(Path(data).resolve())
    root = getattr(data, "root", None)
    return str(Path(root).resolve()) if root is not None else None


def _data_fingerprint(data: Any, items: Sequence[Any]) -> dict[str, str] | None:
    """Hashes of the task folder trained on (None for items built in memory or generated:
    the generated ones are a function of the seed, a resume key)."""
    from modprobe.study.runfolder import data_fingerprint

    if isinstance(data, (str, os.PathLike)):
        root: Any = data
    else:
        root = getattr(data, "root", None)
    if root is None:
        return None
    return data_fingerprint(root, [it.image_file for it in items if it.image_file])


def _train(loaded: Any, items: list[Any], config: TrainConfig, out: Path,
           manifest: dict[str, Any], progress: bool, accelerator: Any,
           stepped: list[int]) -> TrainResult:
    from nnsight import NNsight
    from tqdm.auto import tqdm

    from modprobe.finetune.step import compute_losses

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
    if main:
        manifest.update({"kind": RUN_KIND, "family": loaded.adapter.family,
                         "trainable_parameters": sum(p.numel() for p in parameters.values()),
                         "n_items": len(items), "processes": accelerator.num_processes,
                         "mixed_precision": accelerator.mixed_precision, "status": "running"})
        write_json(out / "manifest.json", manifest)
    cache: dict[str, int] = {}
    options = perturbation_options(loaded)
    bar = tqdm(total=config.steps, initial=start, desc="modprobe.finetune", unit="step",
               disable=not (progress and main))
    began = time.perf_counter()
    loaded.module.train()
    for step in range(start, config.steps):
        tick = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in range(config.grad_accum):
            # The global batch of a step is micro-batches 0..processes*grad_accum-1, drawn
            # by their index alone: N processes with grad_accum A train on the same batches
            # as one process with grad_accum N*A (docs/scale.md).
            index = accelerator.process_index * config.grad_accum + micro
            batch = micro_batch(items, config.batch_size, config.seed, step, index, 0,
                                config.perturbations, options)
            clean, perturbed = _train_batches(loaded, batch, cache)
            with accelerator.autocast():
                losses = compute_losses(loaded, clean, perturbed, config.loss)
            accelerator.backward(losses["loss"] / config.grad_accum)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) / config.grad_accum
        if accelerator.num_processes > 1:
            # Averaging gradients by hand keeps the model unwrapped (the capture traces the
            # module itself); LoRA gradients are small, so this costs little.
            average_gradients(accelerator, list(parameters.values()))
            sums = {k: float(accelerator.reduce(torch.tensor(v, device=accelerator.device),
                                                reduction="mean")) for k, v in sums.items()}
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(parameters.values()), config.grad_clip)
        optimizer.step()
        row = {"step": step + 1, **{k: sums[k] for k in ("loss", *TERMS) if k in sums},
               "lr": _learning_rate(config, step), "seconds": time.perf_counter() - tick}
        log.append(row)
        stepped.append(step + 1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("loss", *TERMS)})
        bar.update(1)
        done = step + 1
        if main and (done % config.checkpoint_every == 0 or done == config.steps):
            save_checkpoint(out, done, parameters, optimizer, log, keep=config.keep_checkpoints)
            write_csv(out / LOG_FILE, pd.DataFrame(log))
    bar.close()
    loaded.module.eval()
    seconds = time.perf_counter() - began
    if main:
        save_model(loaded, peft_model, out / MODEL_DIR)
        write_csv(out / LOG_FILE, pd.DataFrame(log))
        manifest.update({"status": "complete", "steps_done": config.steps,
                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write_json(out / "manifest.json", manifest)
    accelerator.wait_for_everyone()
    return TrainResult(out=out, model=loaded, log=pd.DataFrame(log), steps=config.steps,
                       seconds=seconds, trainable=sum(p.numel() for p in parameters.values()))


def broadcast_parameters(accelerator: Any, parameters: Sequence[torch.nn.Parameter]) -> None:
    """Give every process process 0's values of ``parameters`` (one broadcast)."""
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


def save_model(loaded: Any, peft_model: Any, folder: Path) -> None:
    """``save_pretrained`` of the adapter (LoRA) or the whole model (full), plus the processor.

    Written into a temporary folder renamed into place, so ``RUN/model`` is whole or absent.
    """
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        if peft_model is not None:
            # save_embedding_layers=False: LoRA never touches the embeddings, and "auto"
            # would look the base model up on the hub.
            peft_model.save_pretrained(str(tmp), save_embedding_layers=False)
        else:
            loaded.module.save_pretrained(str(tmp))
        loaded.processor.save_pretrained(str(tmp))
        if folder.exists():  # a resumed run that had already finished once
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_log(run: str | os.PathLike[str]) -> pd.DataFrame:
    """The per-step log of a run folder."""
    return pd.read_csv(Path(run) / LOG_FILE)


def read_manifest(run: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads((Path(run) / "manifest.json").read_text(encoding="utf-8"))
