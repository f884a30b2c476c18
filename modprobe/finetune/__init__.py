"""Fine-tuning on the capture hooks: attention calibration, consistency, masked adversarial.

Train a model to use the modality the task says is relevant (``docs/finetune.md``):

```python
import modprobe
from modprobe.finetune import LossConfig, TrainConfig, train

lm = modprobe.load("organism")
train(lm, "data/interference", TrainConfig(out="runs/ft", loss=LossConfig(calibration=1.0)))
tuned = modprobe.load("runs/ft")
```

The per-step mathematics (:mod:`.losses`, :mod:`.adversarial`, :mod:`.step`), for your
own loops:

```python
from modprobe.finetune import LossConfig, TrainBatch, compute_losses

config = LossConfig(answer=1.0, calibration=0.5, consistency=0.01, adversarial=1.0)
terms = compute_losses(lm, TrainBatch(batch, targets, ["image"] * n), perturbed, config)
terms["loss"].backward()
```

Names are imported lazily so that ``import modprobe.finetune`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AdversarialConfig": "modprobe.finetune.adversarial",
    "AdversarialResult": "modprobe.finetune.adversarial",
    "EmbeddingPerturbation": "modprobe.finetune.adversarial",
    "adversarial_delta": "modprobe.finetune.adversarial",
    "adversarial_loss": "modprobe.finetune.adversarial",
    "irrelevant_mask": "modprobe.finetune.adversarial",
    "irrelevant_spans": "modprobe.finetune.adversarial",
    "answer_logits": "modprobe.finetune.answer",
    "answer_loss": "modprobe.finetune.answer",
    "attention_calibration_loss": "modprobe.finetune.losses",
    "consistency_loss": "modprobe.finetune.losses",
    "TERMS": "modprobe.finetune.step",
    "LossConfig": "modprobe.finetune.step",
    "TrainBatch": "modprobe.finetune.step",
    "check_batch": "modprobe.finetune.step",
    "compute_losses": "modprobe.finetune.step",
    "LoraSettings": "modprobe.finetune.lora",
    "LoraTargetError": "modprobe.finetune.lora",
    "TrainConfig": "modprobe.finetune.config",
    "FinetuneDataError": "modprobe.finetune.data",
    "FinetuneError": "modprobe.finetune.trainer",
    "TrainResult": "modprobe.finetune.trainer",
    "train": "modprobe.finetune.trainer",
}

__all__ = [
    "TERMS",
    "AdversarialConfig",
    "AdversarialResult",
    "EmbeddingPerturbation",
    "FinetuneDataError",
    "FinetuneError",
    "LoraSettings",
    "LoraTargetError",
    "LossConfig",
    "TrainBatch",
    "TrainConfig",
    "TrainResult",
    "adversarial_delta",
    "adversarial_loss",
    "answer_logits",
    "answer_loss",
    "attention_calibration_loss",
    "check_batch",
    "compute_losses",
    "consistency_loss",
    "irrelevant_mask",
    "irrelevant_spans",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modprobe.finetune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
