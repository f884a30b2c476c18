"""Fine-tuning on the capture hooks: attention calibration, consistency, masked adversarial.

The per-step mathematics (:mod:`.losses`, :mod:`.adversarial`, :mod:`.answer`, :mod:`.step`):

```python
from modprobe.finetune import LossConfig, TrainBatch, compute_losses

config = LossConfig(answer=1.0, calibration=0.5, consistency=0.01, adversarial=1.0)
terms = compute_losses(lm, TrainBatch(batch, targets, ["image"] * n), perturbed, config)
terms["loss"].backward()
```

See ``docs/finetune.md``. Names are imported lazily (torch loads on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LossConfig": "modprobe.finetune.step",
    "TrainBatch": "modprobe.finetune.step",
    "compute_losses": "modprobe.finetune.step",
    "check_batch": "modprobe.finetune.step",
    "TERMS": "modprobe.finetune.step",
    "attention_calibration_loss": "modprobe.finetune.losses",
    "consistency_loss": "modprobe.finetune.losses",
    "answer_logits": "modprobe.finetune.answer",
    "answer_loss": "modprobe.finetune.answer",
    "AdversarialConfig": "modprobe.finetune.adversarial",
    "AdversarialResult": "modprobe.finetune.adversarial",
    "EmbeddingPerturbation": "modprobe.finetune.adversarial",
    "adversarial_delta": "modprobe.finetune.adversarial",
    "adversarial_loss": "modprobe.finetune.adversarial",
    "irrelevant_mask": "modprobe.finetune.adversarial",
    "irrelevant_spans": "modprobe.finetune.adversarial",
}

__all__ = [
    "TERMS",
    "AdversarialConfig",
    "AdversarialResult",
    "EmbeddingPerturbation",
    "LossConfig",
    "TrainBatch",
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
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modprobe.finetune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
