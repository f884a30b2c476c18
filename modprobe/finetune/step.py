"""One training step's losses: what the trainer calls per batch.

```python
from modprobe.finetune import LossConfig, TrainBatch, compute_losses

config = LossConfig(answer=1.0, calibration=0.5, consistency=0.01, adversarial=1.0)
clean = TrainBatch(lm.encode(prompts), targets, relevant=["image"] * len(prompts))
terms = compute_losses(lm, clean, perturbed, config)
terms["loss"].backward()          # terms["answer"], terms["calibration"], ... for the log
```

Per batch:

* the clean batch (and the perturbed one, when given) runs one forward each; with a
  calibration weight that forward is ``capture(..., grad=True)``, which reads the
  attention mass of every layer and head at the answer position from the same pass that
  produces the answer logits;
* ``answer``: cross-entropy of the answer-position logits (those that predict the
  answer token) against the targets, mean over clean and perturbed rows;
* ``calibration``: :func:`attention_calibration_loss` on the log-masses of those rows toward
  each row's relevant span;
* ``consistency``: :func:`consistency_loss` between clean row ``b`` and perturbed row
  ``b`` (JS, or KL(clean || perturbed) with the clean side detached);
* ``adversarial``: the answer loss on the clean rows with the irrelevant modality's
  merged embeddings adversarially perturbed (:mod:`modprobe.finetune.adversarial`).

``loss = answer * L_answer + calibration * L_cal + consistency * L_cons
+ adversarial * L_adv``; a term with weight 0 is neither computed nor returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from modprobe.capture import capture
from modprobe.finetune.adversarial import (
    ADV_NORMS,
    AdversarialConfig,
    adversarial_loss,
    irrelevant_mask,
)
from modprobe.finetune.answer import answer_logits, answer_loss
from modprobe.finetune.losses import (
    CALIBRATION_KINDS,
    CONSISTENCY_KINDS,
    attention_calibration_loss,
    consistency_loss,
    span_index,
)

#: Names of the loss terms, in the order ``compute_losses`` returns them.
TERMS: tuple[str, ...] = ("answer", "calibration", "consistency", "adversarial")


@dataclass
class LossConfig:
    """Weights and settings of the loss terms.

    Attributes:
        answer: Weight of the supervised answer loss (clean and perturbed rows).
        calibration: Weight of the attention-calibration loss (0: off).
        consistency: Weight of the clean/perturbed consistency loss (0: off; the paper
            uses 0.01).
        adversarial: Weight of the masked adversarial answer loss (0: off).
        calibration_kind: ``"cross_entropy"``, ``"neg_log_mass"`` or ``"margin"``.
        calibration_layers: Decoder layers to calibrate (None: all).
        calibration_heads: Heads to calibrate (None: all).
        calibration_over: Spans the calibration renormalises over (None: the content
            spans, see :func:`attention_calibration_loss`).
        calibration_margin: Margin of ``calibration_kind="margin"``.
        consistency_kind: ``"js"`` or ``"kl"``.
        temperature: Softmax temperature of the consistency loss.
        adv_steps: Ascent steps K.
        adv_step_size: Raw-gradient step size.
        adv_eps: Radius of the perturbation ball.
        adv_norm: ``"linf"`` or ``"l2"``.
        adv_init_scale: Random start's scale as a fraction of ``adv_eps``.
        adv_on_perturbed: Also perturb the perturbed rows adversarially (the paper does
            both; it doubles the adversarial cost). The term is then the mean over both.
    """

    answer: float = 1.0
    calibration: float = 0.0
    consistency: float = 0.0
    adversarial: float = 0.0
    calibration_kind: str = "cross_entropy"
    calibration_layers: Sequence[int] | None = None
    calibration_heads: Sequence[int] | None = None
    calibration_over: Sequence[str] | None = None
    calibration_margin: float = 0.2
    consistency_kind: str = "js"
    temperature: float = 1.0
    adv_steps: int = 2
    adv_step_size: float = 0.1
    adv_eps: float = 1e-3
    adv_norm: str = "linf"
    adv_init_scale: float = 0.5
    adv_on_perturbed: bool = False

    def __post_init__(self) -> None:
        """Refuse a loss weight that is negative or not finite (naming its option)."""
        for name in TERMS:
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValueError(f"loss weight {name} (--{name}) must be a finite number >= 0, "
                                 f"got {value}")
        if not any(getattr(self, name) > 0 for name in TERMS):
            raise ValueError("every loss weight is 0: enable at least one of "
                             f"{', '.join(TERMS)}")
        if self.calibration_kind not in CALIBRATION_KINDS:
            raise ValueError(f"unknown calibration_kind {self.calibration_kind!r}; use one of "
                             f"{', '.join(CALIBRATION_KINDS)}")
        if self.consistency_kind not in CONSISTENCY_KINDS:
            raise ValueError(f"unknown consistency_kind {self.consistency_kind!r}; use one of "
                             f"{', '.join(CONSISTENCY_KINDS)}")
        if self.adv_norm not in ADV_NORMS:
            raise ValueError(f"unknown adv_norm {self.adv_norm!r}; use one of {', '.join(ADV_NORMS)}")
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature (--temperature) must be a finite number > 0, "
                             f"got {self.temperature}")
        self.adversarial_config()  # validates the adversarial settings

    def adversarial_config(self) -> AdversarialConfig:
        """The adversarial settings as an :class:`AdversarialConfig`."""
        return AdversarialConfig(steps=self.adv_steps, step_size=self.adv_step_size,
                                 eps=self.adv_eps, norm=self.adv_norm,
                                 init_scale=self.adv_init_scale)

    def enabled(self) -> tuple[str, ...]:
        """The terms with a positive weight."""
        return tuple(name for name in TERMS if getattr(self, name) > 0)


@dataclass
class TrainBatch:
    """One encoded batch with its answers and each row's relevant modality.

    Attributes:
        batch: ``loaded.encode(prompts)`` output (left padded).
        targets: `batch` token id of the first token of each row's gold answer.
        relevant: Per row the span the task says is relevant (``"image"``, ``"context"``).
    """

    batch: dict
    targets: torch.Tensor
    relevant: list[str]

    @property
    def rows(self) -> int:
        """Rows of the batch."""
        return int(self.batch["input_ids"].shape[0])


def check_batch(loaded: Any, train: TrainBatch, config: LossConfig, *, label: str = "batch"
                ) -> None:
    """Fail with a clear error before any step when a batch cannot give the enabled losses.

    Checks one target and one relevant name per row, known span names, the relevant span
    present in each row when calibrating, known ``calibration_over`` names that include
    every row's relevant span, calibration layers and heads in range, and that
    the model merges image features into its sequence when the adversarial term is on.

    Args:
        loaded: The :class:`modprobe.LoadedModel` to train.
        train: One encoded batch with its targets and relevant spans.
        config: The loss weights and options (which checks apply).
        label: What the batch is, in error messages (``"image-heavy clean batch"``).

    Raises:
        ValueError: naming the row, the span and what the row holds.
    """
    rows = train.rows
    targets = torch.as_tensor(train.targets).reshape(-1)
    if targets.shape[0] != rows or len(train.relevant) != rows:
        raise ValueError(f"{label}: {rows} rows but {targets.shape[0]} targets and "
                         f"{len(train.relevant)} relevant span names; give one of each per row")
    for name in set(train.relevant):
        span_index(name)
    spans = loaded.spans(train.batch)
    if config.adversarial > 0 and getattr(
            loaded.adapter.language_config(loaded.config), "cross_attention_layers", None):
        raise ValueError(
            f"{label}: the adversarial term perturbs image features merged into the token "
            f"sequence, but {loaded.config.model_type} reads them through cross-attention; "
            "set adversarial=0 for this model")
    if config.calibration > 0:
        if config.calibration_over is not None and config.calibration_kind != "neg_log_mass":
            for name in config.calibration_over:
                try:
                    span_index(name)
                except ValueError as err:
                    raise ValueError(f"calibration_over: {err}") from None
            missing = sorted(set(train.relevant) - set(config.calibration_over))
            if missing:
                raise ValueError(f"calibration_over={list(config.calibration_over)} leaves out "
                                 f"the relevant span(s) {missing}; add them to calibration_over")
        for row, name in enumerate(train.relevant):
            if not bool(spans.mask(name)[row].any()):
                raise ValueError(f"{label} row {row}: the relevant span {name!r} has no tokens "
                                 f"(the row holds {spans.describe(row)}); calibration needs it")
        cfg = loaded.adapter.language_config(loaded.config)
        for option, chosen, size, what in (
                ("calibration_layers", config.calibration_layers,
                 loaded.adapter.num_layers(loaded.module), "decoder layers"),
                ("calibration_heads", config.calibration_heads, int(cfg.num_attention_heads),
                 "attention heads per layer")):
            bad = [int(i) for i in (chosen or ()) if not -size <= int(i) < size]
            if bad:
                raise ValueError(f"{option}: {bad} out of range; the model has {size} {what} "
                                 f"(0..{size - 1}, or negative from the end)")


def _forward(loaded: Any, batch: Mapping[str, Any], with_mass: bool
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Answer-position logits (and, when asked, attention mass) from one forward."""
    if not with_mass:
        return answer_logits(loaded, batch), None
    cap = capture(loaded, batch, grad=True, lens=False, attention=True, top_k=1)
    return cap.final_logits, cap.attention_log_mass


def compute_losses(loaded: Any, clean: TrainBatch, perturbed: TrainBatch | None,
                   config: LossConfig, *, generator: torch.Generator | None = None
                   ) -> dict[str, torch.Tensor]:
    """The loss terms of one training step and their weighted total.

    Args:
        loaded: The model being trained (:class:`modprobe.LoadedModel`).
        clean: The clean batch.
        perturbed: Its perturbed counterpart, row for row (needed for consistency), or None.
        config: Weights and settings.
        generator: Seeds the adversarial random start (default: the global RNG).

    Returns:
        ``"loss"`` (the weighted total, differentiable) and one unweighted scalar per
        enabled term (``"answer"``, ``"calibration"``, ``"consistency"``, ``"adversarial"``).

    Raises:
        ValueError: consistency without a perturbed batch, or batches whose rows do not pair.
    """
    if config.consistency > 0:
        if perturbed is None:
            raise ValueError("the consistency loss needs a perturbed batch (perturbed=None)")
        if perturbed.rows != clean.rows:
            raise ValueError(f"the consistency loss pairs clean and perturbed rows, but there "
                             f"are {clean.rows} clean and {perturbed.rows} perturbed rows")
    parts = [clean] if perturbed is None else [clean, perturbed]
    with_mass = config.calibration > 0
    logits: list[torch.Tensor] = []
    masses: list[torch.Tensor] = []
    for part in parts:
        part_logits, mass = _forward(loaded, part.batch, with_mass)
        logits.append(part_logits)
        if mass is not None:
            masses.append(mass)
    device = logits[0].device
    targets = [torch.as_tensor(p.targets, device=device).long().reshape(-1) for p in parts]

    terms: dict[str, torch.Tensor] = {}
    if config.answer > 0:
        terms["answer"] = answer_loss(torch.cat(logits), torch.cat(targets))
    if config.calibration > 0:
        terms["calibration"] = attention_calibration_loss(
            None, [name for p in parts for name in p.relevant],
            log_mass=torch.cat(masses), layers=config.calibration_layers,
            heads=config.calibration_heads, kind=config.calibration_kind, over=config.calibration_over,
            margin=config.calibration_margin)
    if config.consistency > 0:
        terms["consistency"] = consistency_loss(logits[0], logits[1], kind=config.consistency_kind,
                                                temperature=config.temperature)
    if config.adversarial > 0:
        adv_parts = parts if config.adv_on_perturbed else [clean]
        adv_config = config.adversarial_config()
        losses = [adversarial_loss(loaded, p.batch, t, p.relevant, adv_config,
                                   generator=generator).loss
                  for p, t in zip(adv_parts, targets)]
        terms["adversarial"] = torch.stack(losses).mean()
    total = sum(getattr(config, name) * value for name, value in terms.items())
    assert isinstance(total, torch.Tensor)
    return {"loss": total, **terms}


__all__ = ["TERMS", "LossConfig", "TrainBatch", "check_batch", "compute_losses",
           "irrelevant_mask"]
