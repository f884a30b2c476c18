"""Train the model organism: a tiny LLaVA that learns the low-resolution color task.

The objective is next-token cross-entropy on the one-word answer at the answer position
of the prompt that modprobe's own llava adapter builds, so the study runner's prompts are
exactly the training distribution. Training sees vision-only, text-only and *agreeing*
image+text items, never conflicts: how the organism resolves a conflict is emergent.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from modprobe.adapters import ADAPTERS
from modprobe.determinism import deterministic_torch
from modprobe.io import make_readable
from modprobe.organism import sources
from modprobe.organism.config import OrganismConfig
from modprobe.organism.sources import LabelledPrompt

ADAPTER = ADAPTERS["llava"]


@dataclass
class ProbeResult:
    """Per-item outcome of one held-out probe set.

    Attributes:
        predicted: The top-1 token of each item, decoded.
        correct: Whether each prediction is among the item's answers.
        entropy: Whole-vocabulary next-token entropy at the answer position, nats.
    """

    predicted: list[str]
    correct: list[bool]
    entropy: list[float]

    @property
    def accuracy(self) -> float:
        """The share of correct answers (0 for no answers)."""
        return sum(self.correct) / max(len(self.correct), 1)


@dataclass
class TrainingRun:
    """The outcome of :func:`train`.

    Attributes:
        model: The trained model (eval mode).
        processor: Its processor.
        log: One row per evaluation: step, loss, wall and CPU seconds, then
            ``acc/<probe set>``.
        seconds: Wall time of the training steps (data, forward, backward; evaluation
            excluded).
        cpu_seconds: CPU time of the same, all threads together.
        steps_per_second: ``steps / seconds``.
    """

    model: LlavaForConditionalGeneration
    processor: object
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    steps_per_second: float = 0.0


def build_model(config: OrganismConfig, processor: object) -> LlavaForConditionalGeneration:
    """A randomly initialised LLaVA (CLIP tower + projector + Llama) sized by ``config``.

    Args:
        config: The organism's sizes (widths, layers, heads, image and patch size).
        processor: The organism's processor (its vocabulary and image token).

    Returns:
        The untrained model.
    """
    tokenizer = processor.tokenizer  # type: ignore[attr-defined]
    image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)  # type: ignore[attr-defined]
    vision = CLIPVisionConfig(
        hidden_size=config.vision_width, intermediate_size=config.mlp_ratio * config.vision_width,
        num_hidden_layers=config.vision_layers, num_attention_heads=config.vision_heads,
        image_size=config.image_size, patch_size=config.patch_size, projection_dim=config.text_width)
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.text_width,
        intermediate_size=config.mlp_ratio * config.text_width,
        num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads, max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    llava = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=image_token_id,
        vision_feature_layer=-2, vision_feature_select_strategy="default",
        image_seq_length=(config.image_size // config.patch_size) ** 2,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    return LlavaForConditionalGeneration(llava)


def answer_logits(model: LlavaForConditionalGeneration, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token logits at the answer position (the last one: batches are left padded).

    Args:
        model: The organism.
        batch: A left-padded batch (``ADAPTER.encode``'s).

    Returns:
        `batch vocab` logits.
    """
    inputs = ADAPTER.model_inputs(batch, model)
    return model(**inputs, logits_to_keep=1).logits[:, -1, :]


def answer_ids(processor: object, answers: Sequence[str]) -> torch.Tensor:
    """Token id of each one-word answer (each must be a single vocabulary word).

    Args:
        processor: The organism's processor.
        answers: One-word answers.

    Returns:
        `answer` int64 token ids.

    Raises:
        ValueError: an answer is not a word of the vocabulary.
    """
    tokenizer = processor.tokenizer  # type: ignore[attr-defined]
    ids = tokenizer.convert_tokens_to_ids(list(answers))
    unknown = [a for a, i in zip(answers, ids) if i == tokenizer.unk_token_id]
    if unknown:
        raise ValueError(f"answers outside the organism's vocabulary: {unknown}")
    return torch.tensor(ids)


def batches(items: Iterator[LabelledPrompt], size: int) -> Iterator[list[LabelledPrompt]]:
    """Consecutive chunks of ``size`` items of an endless stream.

    Args:
        items: An endless stream of labelled prompts.
        size: Items per batch.

    Returns:
        An endless iterator of lists of ``size`` items.
    """
    while True:
        yield [next(items) for _ in range(size)]


@torch.no_grad()
def probe(model: LlavaForConditionalGeneration, processor: object,
          items: Sequence[LabelledPrompt], batch_size: int = 64) -> ProbeResult:
    """Top-1 answer, correctness and whole-vocabulary entropy of each held-out item.

    Args:
        model: The organism (set to eval mode).
        processor: Its processor.
        items: The held-out labelled prompts.
        batch_size: Prompts per forward pass.

    Returns:
        The :class:`ProbeResult`, one entry per item.
    """
    model.eval()
    tokenizer = processor.tokenizer  # type: ignore[attr-defined]
    result = ProbeResult([], [], [])
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch = ADAPTER.encode(processor, [it.prompt for it in chunk])
        logp = torch.log_softmax(answer_logits(model, batch).float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        top = tokenizer.convert_ids_to_tokens(logp.argmax(-1).tolist())
        result.predicted += top
        result.correct += [t in it.answers for t, it in zip(top, chunk)]
        result.entropy += entropy.tolist()
    return result


def _learning_rate(config: OrganismConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(config: OrganismConfig,
          progress: Callable[[dict[str, float]], None] | None = None) -> TrainingRun:
    """Train an organism from scratch, deterministically from ``config.seed``.

    Args:
        config: Architecture and recipe.
        progress: Called with each log row as it is written (e.g. to print it).

    Returns:
        The trained model, its processor, the log and the timing.
    """
    with deterministic_torch(config.seed, config.threads):
        return _train(config, progress)


def _train(config: OrganismConfig,
           progress: Callable[[dict[str, float]], None] | None) -> TrainingRun:
    processor = sources.build_processor(config)
    model = build_model(config, processor)
    probe_sets = sources.probe_sets(config)
    stream = batches(sources.training_stream(config), config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.98))
    run = TrainingRun(model=model, processor=processor)
    running_loss, seen, wall, cpu = 0.0, 0, 0.0, 0.0
    for step in range(1, config.steps + 1):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        chunk = next(stream)
        batch = ADAPTER.encode(processor, [it.prompt for it in chunk])
        targets = answer_ids(processor, [it.target for it in chunk])
        loss = torch.nn.functional.cross_entropy(answer_logits(model, batch), targets)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step - 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        wall += time.perf_counter() - wall_start
        cpu += time.process_time() - cpu_start
        running_loss += loss.item()
        seen += 1
        if step % config.eval_every == 0 or step == config.steps:
            # Wall time depends on what else the machine runs; CPU time (all threads
            # together) is the better measure of the work on a shared machine.
            row: dict[str, float] = {"step": step, "loss": running_loss / seen,
                                     "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}
            for name, items in probe_sets.items():
                row[f"acc/{name}"] = probe(model, processor, items).accuracy
            run.log.append(row)
            running_loss, seen = 0.0, 0
            if progress is not None:
                progress(row)
    model.eval()
    run.seconds, run.cpu_seconds = wall, cpu
    run.steps_per_second = config.steps / max(wall, 1e-9)
    return run


def save(run: TrainingRun, config: OrganismConfig, out: str | Path) -> Path:
    """Write the checkpoint (model + processor), the training log and the config.

    Args:
        run: The finished training run (model, processor, log, timings).
        config: The organism's config (written with the timings).
        out: The checkpoint folder (created; files in it are replaced).

    Returns:
        ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run.model.save_pretrained(out)
    run.processor.save_pretrained(out)  # type: ignore[attr-defined]
    write_log(run.log, out / "training_log.csv")
    meta = {**config.to_dict(), "train_seconds": round(run.seconds, 1),
            "train_cpu_seconds": round(run.cpu_seconds, 1),
            "steps_per_second": round(run.steps_per_second, 3)}
    (out / "organism_config.json").write_text(json.dumps(meta, indent=2) + "\n")
    make_readable(out)  # safetensors writes 0600; a checkpoint is meant to be shared
    return out


def write_log(rows: Sequence[dict[str, float]], path: Path) -> None:
    """The training log as CSV (step, loss, times, one accuracy column per probe set).

    Args:
        rows: One dict per logged step (all with the same keys).
        path: The CSV file to write (nothing is written for no rows).
    """
    if not rows:
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
