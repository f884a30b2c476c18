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
        holdout: Share of the data's clusters (generator groups) held out for evaluation,
            drawn with ``seed`` (:mod:`modprobe.data.split`); 0 trains on everything.
            Ignored when ``train`` gets an evaluation set.
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
    holdout: float = 0.25
    resume: bool = False

    def __post_init__(self) -> None:
        """Fill in the default loss weights and make ``perturbations`` a tuple."""
        from modprobe.finetune.step import LossConfig

        if self.loss is None:
            self.loss = LossConfig()
        self.perturbations = tuple(self.perturbations)

    def check(self) -> None:
        """Raise a one-line ``ValueError`` naming the first bad option (and its CLI flag)."""
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"{_flag('warmup_steps')} must be an integer >= 0, "
                             f"got {self.warmup_steps!r}")
        _finite(self.learning_rate, "learning_rate", positive=True)
        _finite(self.weight_decay, "weight_decay")
        if self.grad_clip is not None:
            # A negative clip flips the gradient's sign in clip_grad_norm_; NaN fills it with NaN.
            _finite(self.grad_clip, "grad_clip", positive=True,
                    why=" (None, or --grad-clip 0, turns clipping off)")
        if not (isinstance(self.holdout, (int, float)) and 0 <= self.holdout < 1):
            raise ValueError(f"{_flag('holdout')} must be in [0, 1) (the share of groups held "
                             f"out for evaluation), got {self.holdout!r}")
        if self.mode not in ("lora", "full"):
            raise ValueError(f"mode must be 'lora' or 'full', got {self.mode!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"{_flag('precision')} must be auto, bf16 or fp32, "
                             f"got {self.precision!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"{_flag('threads')} must be an integer >= 1, got {self.threads!r}")
        if self.mode == "lora":
            self.lora_check()
        if self.loss.consistency > 0 and not self.perturbations:
            raise ValueError("the consistency loss compares clean and perturbed answers: "
                             "give perturbations (e.g. --perturb MD,RP)")

    def lora_check(self) -> None:
        """The LoRA settings: rank >= 1, alpha > 0 (0 trains nothing), dropout in [0, 1)."""
        lora = self.lora
        if isinstance(lora.rank, bool) or not isinstance(lora.rank, int) or lora.rank < 1:
            raise ValueError(f"LoRA rank (--lora-rank) must be an integer >= 1, got {lora.rank!r}")
        _finite(lora.alpha, "lora.alpha", positive=True,
                why=" (the update is scaled by alpha / rank: 0 leaves the model as its base)")
        if not 0 <= lora.dropout < 1:
            raise ValueError(f"LoRA dropout (--lora-dropout) must be in [0, 1), got {lora.dropout!r}")
        if not lora.targets:
            raise ValueError("LoRA targets (--lora-targets) are empty; name at least one "
                             "linear layer (e.g. q_proj,v_proj)")

    def options(self) -> dict[str, Any]:
        """JSON-ready options for the manifest (nested dataclasses as dicts)."""
        import json

        options = asdict(self)
        options.pop("out")
        options.pop("resume")
        return json.loads(json.dumps(options, default=str))


#: The command-line flag of each option, for messages that both API and CLI users read.
_FLAGS = {"steps": "--steps", "batch_size": "--batch-size", "grad_accum": "--grad-accum",
          "checkpoint_every": "--checkpoint-every", "keep_checkpoints": "keep_checkpoints",
          "warmup_steps": "--warmup", "learning_rate": "--lr", "weight_decay": "--weight-decay",
          "grad_clip": "--grad-clip", "precision": "--precision", "threads": "--threads",
          "lora.alpha": "--lora-alpha", "holdout": "--holdout"}


def _flag(name: str) -> str:
    flag = _FLAGS.get(name, name)
    return flag if flag == name else f"{name} ({flag})"


def _finite(value: Any, name: str, *, positive: bool = False, why: str = "") -> None:
    """Refuse a non-number, NaN, an infinity, a negative (or, with ``positive``, 0)."""
    import math

    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{_flag(name)} must be a finite number {bound}{why}, got {value!r}")
