"""``python -m modprobe.bench finetune``: what each fine-tuning loss adds to a training step.

One optimizer step (``zero_grad``, :func:`modprobe.finetune.compute_losses`, ``backward``,
``step``) on a clean batch and its perturbed counterpart, five ways:

* ``plain``: the answer loss on clean and perturbed rows;
* ``calibration``: + the attention-calibration loss (it rides the same forwards);
* ``consistency``: + the JS consistency between clean and perturbed rows;
* ``adversarial_k1`` / ``adversarial_k2``: + the masked adversarial answer loss with
  K = 1 or 2 ascent steps on the clean rows.

All five run side by side in one process, alternating step by step
(:func:`modprobe.bench.measure.measure_paired`, peak memory reset before every step), on
the bundled organism and on a model with LLaVA-1.5-7B's attention geometry and a small
hidden size (:mod:`modprobe.bench.geometry`). Training is set up as the trainer sets it
up: LoRA on the language model's ``q_proj`` and ``v_proj`` (rank 8, AdamW, lr 1e-4: the MMA
recipe), or every weight with ``--train full``. The adversarial ratios are printed beside their FLOP-count
predictions (:func:`predicted_ratio`). The last line is
``finetune/plain time: calibration=X consistency=Y adversarial_k1=Z adversarial_k2=W``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modprobe.bench.capture import MIB, CaptureBenchOptions, build_model, machine_description
from modprobe.bench.geometry import BenchGeometry, bench_batch
from modprobe.bench.measure import measure_paired
from modprobe.bench.variants import PreparedVariant

#: Variant names, in the order the table lists them.
FINETUNE_VARIANTS: tuple[str, ...] = (
    "plain", "calibration", "consistency", "adversarial_k1", "adversarial_k2")
#: Models the benchmark can run.
FINETUNE_MODELS: tuple[str, ...] = ("organism", "llava-geometry")
#: Target: what the calibration term may add to a step's time.
TARGET_CALIBRATION_OVER_PLAIN = 1.15
#: Backward cost in forwards: activation gradients (1) plus weight gradients (1 when every
#: weight trains, ~0 for rank-8 LoRA adapters).
BACKWARD_OVER_FORWARD = {"lora": 1.0, "full": 2.0}

Printer = Callable[[str], None]


def predicted_ratio(steps: int, train: str, counting: str = "full") -> float:
    """FLOP-count prediction of an adversarial step over a plain one.

    With ``F`` one forward of a batch and ``B = b F`` its backward, a plain step is the
    clean and the perturbed batch, ``2 (F + B)``. The adversarial term adds ``K`` ascent
    steps on the clean batch and one forward and backward of the perturbed embeddings:

    * ``counting="full"``: each ascent step is a forward plus a backward to the embeddings
      only (activation gradients, ``~F``): ``1 + (2K + 1 + b) / (2 (1 + b))``.
    * ``counting="paper"``: the interference paper's appendix-E count, which ignores the
      ascent steps' backward: ``1 + (K + 1 + b) / (2 (1 + b))``.

    Embedding, vision-tower and ``lm_head`` costs are left out (small at LLaVA's scale).

    Args:
        steps: The ascent steps ``K``.
        train: ``"lora"`` or ``"full"`` (sets ``b``, the backward's cost over a forward).
        counting: ``"full"`` or ``"paper"``.

    Returns:
        The predicted time of an adversarial step over a plain one.
    """
    b = BACKWARD_OVER_FORWARD[train]
    ascent = 2.0 * steps if counting == "full" else float(steps)
    return 1.0 + (ascent + 1.0 + b) / (2.0 * (1.0 + b))


@dataclass
class FinetuneBenchOptions:
    """How to run the benchmark.

    Attributes:
        models: Which of :data:`FINETUNE_MODELS` to run, in order (the last one's ratios
            make the last line).
        geometry: Shape of the LLaVA-geometry model and its batch (rows = ``batch``).
        organism_rows: Rows of the organism's clean (and perturbed) batch.
        repeats: Timed steps per variant after one warm-up step each.
        train: ``"lora"`` (rank 8 on q_proj/v_proj of the language model) or ``"full"``
            (every weight).
        device: ``"cpu"`` or ``"cuda"``.
    """

    models: tuple[str, ...] = FINETUNE_MODELS
    geometry: BenchGeometry = field(default_factory=lambda: BenchGeometry(batch=2))
    organism_rows: int = 16
    repeats: int = 5
    train: str = "lora"
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Refuse unknown models, an unknown training mode and counts below 1."""
        unknown = [m for m in self.models if m not in FINETUNE_MODELS]
        if unknown or not self.models:
            raise ValueError(f"--models: unknown {unknown}; use some of {', '.join(FINETUNE_MODELS)}")
        if self.train not in BACKWARD_OVER_FORWARD:
            raise ValueError(f"--train must be lora or full, not {self.train!r}")
        if self.repeats < 1 or self.organism_rows < 1:
            raise ValueError("--repeats and --organism-rows must be at least 1")


def loss_config(variant: str) -> Any:
    """The :class:`~modprobe.finetune.LossConfig` of one variant."""
    from modprobe.finetune import LossConfig

    return {
        "plain": LossConfig(),
        "calibration": LossConfig(calibration=1.0),
        "consistency": LossConfig(consistency=1.0),
        "adversarial_k1": LossConfig(adversarial=1.0, adv_steps=1),
        "adversarial_k2": LossConfig(adversarial=1.0, adv_steps=2),
    }[variant]


def relevant_span() -> str:
    """The description's span: ``"context"`` where spans have it, else ``"text"``."""
    from modprobe.spans import SPAN_NAMES

    return "context" if "context" in SPAN_NAMES else "text"


def setup_training(loaded: Any, train: str) -> tuple[Any, list[torch.nn.Parameter]]:
    """Open the weights a run trains, as the trainer does (:mod:`modprobe.finetune.lora`).

    Args:
        loaded: The loaded model.
        train: ``"lora"``: rank-8 adapters on the language model's q_proj and v_proj,
            everything else frozen; ``"full"``: every weight.

    Returns:
        The model (re-wrapped for nnsight, so the capture sees the LoRA layers) and the
        trainable parameters.
    """
    import dataclasses

    from nnsight import NNsight

    from modprobe.finetune.lora import LoraSettings, apply_lora, trainable_parameters

    if train == "lora":
        apply_lora(loaded, LoraSettings(), base=loaded.source)
    else:
        for param in loaded.module.parameters():
            param.requires_grad_(True)
    loaded = dataclasses.replace(loaded, model=NNsight(loaded.module))
    return loaded, list(trainable_parameters(loaded.module).values())


def organism_batches(loaded: Any, rows: int) -> tuple[Any, Any]:
    """Clean and perturbed organism batches: the description answers, the image does not.

    Clean rows pair the description with the drawn image (of another shape); perturbed
    rows swap in another row's image.

    Args:
        loaded: The bundled organism.
        rows: Rows per batch.

    Returns:
        The clean and the perturbed :class:`~modprobe.finetune.TrainBatch`.
    """
    import numpy as np

    from modprobe.adapters.base import Prompt
    from modprobe.data.lowres import sample_lowres_item
    from modprobe.finetune import TrainBatch

    rng = np.random.default_rng(0)
    items = [sample_lowres_item(rng, 0, 0, kind="image_irrelevant") for _ in range(rows)]
    clean = [Prompt(it.question, context=it.context, images=[it.image]) for it in items]
    perturbed = [Prompt(it.question, context=it.context, images=[items[(i + 1) % rows].image])
                 for i, it in enumerate(items)]
    targets = torch.tensor(loaded.tokenizer.convert_tokens_to_ids([it.answer_text for it in items]))
    relevant = [relevant_span()] * rows
    return (TrainBatch(loaded.encode(clean), targets, relevant),
            TrainBatch(loaded.encode(perturbed), targets, relevant))


def geometry_batches(loaded: Any, geometry: BenchGeometry) -> tuple[Any, Any]:
    """Clean and perturbed batches of the LLaVA-geometry model (another image color).

    Args:
        loaded: The benchmark model.
        geometry: Its shape (rows and tokens per row).

    Returns:
        The clean and the perturbed :class:`~modprobe.finetune.TrainBatch`.
    """
    from modprobe.finetune import TrainBatch

    clean = bench_batch(loaded, geometry)
    perturbed = dict(clean)
    perturbed["pixel_values"] = clean["pixel_values"].flip(1)  # swap the color channels
    rows = int(clean["input_ids"].shape[0])
    targets = torch.tensor(loaded.tokenizer.convert_tokens_to_ids(["red"] * rows))
    relevant = [relevant_span()] * rows
    return TrainBatch(clean, targets, relevant), TrainBatch(perturbed, targets, relevant)


def prepare_steps(loaded: Any, clean: Any, perturbed: Any, train: str) -> list[PreparedVariant]:
    """One :class:`PreparedVariant` per variant: a full optimizer step.

    Args:
        loaded: The model (its trained weights are opened here).
        clean: The clean batch.
        perturbed: The perturbed batch.
        train: ``"lora"`` or ``"full"``.

    Returns:
        The variants in :data:`FINETUNE_VARIANTS` order; each ``run()`` does one step.
    """
    from modprobe.finetune import check_batch, compute_losses

    loaded, params = setup_training(loaded, train)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    loaded.module.train()
    generator = torch.Generator().manual_seed(0)
    tokens = int(clean.batch["input_ids"].shape[1])

    def step_of(variant: str) -> Callable[[], Any]:
        config = loss_config(variant)
        check_batch(loaded, clean, config, label="clean batch")

        def run() -> float:
            optimizer.zero_grad(set_to_none=True)
            terms = compute_losses(loaded, clean, perturbed, config, generator=generator)
            terms["loss"].backward()
            optimizer.step()
            return float(terms["loss"].detach())

        return run

    return [PreparedVariant(name=v, run=step_of(v), tokens=tokens) for v in FINETUNE_VARIANTS]


@dataclass
class ModelResult:
    """Paired measurements of the five variants on one model."""

    model: str
    description: str
    times_s: dict[str, list[float]]
    growth_bytes: dict[str, list[int]]

    def ratio(self, variant: str) -> float:
        """Median over repetitions of the variant's step time over plain's (paired)."""
        return statistics.median(a / b for a, b in zip(self.times_s[variant], self.times_s["plain"]))

    def memory_ratio(self, variant: str) -> float | None:
        """Median peak growth of the variant's steps over plain's (None when plain's is 0)."""
        plain = statistics.median(self.growth_bytes["plain"])
        return statistics.median(self.growth_bytes[variant]) / plain if plain else None

    def table(self, train: str) -> str:
        """Markdown table: time, paired ratio, FLOP prediction and memory of every variant."""
        lines = [("| variant | median step (s) | time / plain (paired median) | FLOP prediction "
                 "(full / paper count) | peak growth (MiB) | memory / plain |"),
                 "|---|---:|---:|---:|---:|---:|"]
        for variant in FINETUNE_VARIANTS:
            steps = {"adversarial_k1": 1, "adversarial_k2": 2}.get(variant)
            predicted = (f"{predicted_ratio(steps, train):.2f} / "
                         f"{predicted_ratio(steps, train, 'paper'):.2f}") if steps else (
                "1.00" if variant != "plain" else "1")
            memory = self.memory_ratio(variant)
            lines.append(
                f"| {variant} | {statistics.median(self.times_s[variant]):.3f} | "
                f"{self.ratio(variant):.2f} | {predicted} | "
                f"{statistics.median(self.growth_bytes[variant]) / MIB:.1f} | "
                f"{'n/a' if memory is None else f'{memory:.2f}'} |")
        return "\n".join(lines)

    def ratios_line(self) -> str:
        """``finetune/plain time: calibration=X consistency=Y ...``."""
        return "finetune/plain time: " + " ".join(
            f"{v}={self.ratio(v):.2f}" for v in FINETUNE_VARIANTS[1:])


def _fixed_mmap_threshold() -> bool:
    """Return freed blocks of 64 KiB or more to the OS at once (glibc ``mallopt``).

    The capture benchmark sets ``MALLOC_MMAP_THRESHOLD_=65536`` in its children for the
    same reason (:func:`modprobe.bench.capture.run_in_child`): otherwise peak RSS measures
    heap fragmentation rather than live tensors. Here all variants share one process, so
    the setting is made in-process.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(-3, 65536))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _load_model(name: str, options: FinetuneBenchOptions, tmp: Path) -> tuple[Any, Any, Any, str]:
    import modprobe

    if name == "organism":
        loaded = modprobe.load("organism", dtype="float32", device=options.device)
        clean, perturbed = organism_batches(loaded, options.organism_rows)
        cfg = loaded.adapter.language_config(loaded.config)
        text = (f"the bundled organism ({cfg.num_hidden_layers} layers x "
                f"{cfg.num_attention_heads} heads, hidden {cfg.hidden_size}), "
                f"{options.organism_rows} rows x {clean.batch['input_ids'].shape[1]} tokens")
        return loaded, clean, perturbed, text
    geometry = options.geometry
    folder = build_model(CaptureBenchOptions(geometry=geometry), tmp / "llava-geometry")
    loaded = modprobe.load(folder, dtype="float32", device=options.device)
    clean, perturbed = geometry_batches(loaded, geometry)
    return loaded, clean, perturbed, f"LLaVA geometry: {geometry.describe()}"


def run_finetune_bench(options: FinetuneBenchOptions, out: Printer = print) -> list[ModelResult]:
    """Run every model's five variants side by side, print tables and the ratios line.

    Args:
        options: Models, geometry, repeats, training mode and device.
        out: Where lines go (``print`` by default); the last one is the ratios line.

    Returns:
        One result per model, in run order.
    """
    mmap_fixed = _fixed_mmap_threshold()
    out(f"device: {options.device}; machine: {machine_description(options.device)}")
    out(f"training: {options.train} ({'rank-8 LoRA on q_proj, v_proj' if options.train == 'lora' else 'every weight'}), "
        f"AdamW; each variant: 1 warm-up step, then {options.repeats} steps alternating with "
        f"the others; clean + perturbed batch per step; relevant span {relevant_span()!r}"
        + ("" if mmap_fixed else " (could not fix the mmap threshold: memory is indicative)"))
    results: list[ModelResult] = []
    with tempfile.TemporaryDirectory(prefix="modprobe-bench-finetune-") as tmp:
        for name in options.models:
            loaded, clean, perturbed, text = _load_model(name, options, Path(tmp))
            out("")
            out(f"## {name}: {text}")
            prepared = prepare_steps(loaded, clean, perturbed, options.train)
            times, growths = measure_paired(prepared, options.repeats, options.device)
            result = ModelResult(name, text, times, growths)
            results.append(result)
            out(result.table(options.train))
            out(f"{name}: {result.ratios_line()}")
            del loaded, prepared
    last = results[-1]
    calibration = last.ratio("calibration")
    out("")
    out(f"target calibration/plain time <= {TARGET_CALIBRATION_OVER_PLAIN} ({last.model}): "
        f"{calibration:.2f} {'met' if calibration <= TARGET_CALIBRATION_OVER_PLAIN else 'MISSED'}")
    out(f"adversarial_k2/plain ({last.model}): measured {last.ratio('adversarial_k2'):.2f}, "
        f"FLOP prediction {predicted_ratio(2, options.train):.2f} (every pass counted; "
        f"{predicted_ratio(2, options.train, 'paper'):.2f} by the paper's count)")
    out(last.ratios_line())
    return results
