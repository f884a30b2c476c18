"""Options of a fine-tuning run, as one dataclass (written to the run's manifest)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from modprobe.finetune.lora import LoraSettings


@dataclass
class TrainConfig:
    """Everything that decides a fine-tuning run besides the model and the data.

    Attributes:
        out: The run folder (``modprobe.load(out)`` loads the result).
        steps: Optimizer steps.
        batch_size: Rows per micro-batch (each row: one clean and, with perturbations,
            one perturbed prompt).
        grad_accum: Micro-batches per optimizer step (gradient accumulation); with several
            processes, each draws its own, so a step sees ``processes * grad_accum *
            batch_size`` rows.
        learning_rate: AdamW learning rate after warm-up (MMA's LoRA recipe: 1e-4).
        warmup_steps: Linear warm-up steps.
        weight_decay: AdamW weight decay.
        grad_clip: Max global gradient norm (None: no clipping).
        mode: ``"lora"`` (adapters on the language model, the rest frozen) or ``"full"``
            (every parameter of the language model, projector and towers).
        lora: LoRA rank, alpha, dropout and targets (``mode="lora"``).
        loss: The loss weights and options (:class:`modprobe.finetune.LossConfig`).
        perturbations: Perturbations drawn for the perturbed copy of each row (names of
            :mod:`modprobe.perturb`); each row gets one that acts on its irrelevant
            modality. Empty: clean rows only.
        seed: Seeds the batches, the perturbations and torch.
        checkpoint_every: Write a checkpoint every this many steps (and at the end).
        keep_checkpoints: Checkpoints kept on disk (older ones are deleted).
        precision: ``"auto"`` (bf16 autocast on GPU, float32 on CPU), ``"bf16"`` or
            ``"fp32"``.
        threads: torch CPU threads (None: leave as is). A CPU run is reproducible for a
            given thread count.
        resume: Continue the run in ``out`` from its last checkpoint.
    """

    out: str
    steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    mode: str = "lora"
    lora: LoraSettings = field(default_factory=LoraSettings)
    loss: Any = None
    perturbations: tuple[str, ...] = ()
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    precision: str = "auto"
    threads: int | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        from modprobe.finetune.step import LossConfig

        if self.loss is None:
            self.loss = LossConfig()
        self.perturbations = tuple(self.perturbations)

    def check(self) -> None:
        """Raise a one-line ``ValueError`` naming the first bad option."""
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.mode not in ("lora", "full"):
            raise ValueError(f"mode must be 'lora' or 'full', got {self.mode!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.mode == "lora" and self.lora.rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {self.lora.rank}")
        if self.loss.consistency > 0 and not self.perturbations:
            raise ValueError("the consistency loss compares clean and perturbed answers: "
                             "give perturbations (e.g. --perturb MD,RP)")

    def options(self) -> dict[str, Any]:
        """JSON-ready options for the manifest (nested dataclasses as dicts)."""
        import json

        options = asdict(self)
        options.pop("out")
        options.pop("resume")
        return json.loads(json.dumps(options, default=str))
