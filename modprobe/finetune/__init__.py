"""Fine-tuning on the capture hooks: attention calibration, consistency, masked adversarial.

The per-step mathematics (:mod:`.losses`, :mod:`.adversarial`, :mod:`.step`):

```python
from modprobe.finetune import LossConfig, TrainBatch, compute_losses

config = LossConfig(answer=1.0, calibration=0.5, consistency=0.01, adversarial=1.0)
terms = compute_losses(lm, TrainBatch(batch, targets, ["image"] * n), perturbed, config)
terms["loss"].backward()
```

See ``docs/finetune.md``.
"""

from modprobe.finetune.adversarial import (
    AdversarialConfig,
    AdversarialResult,
    EmbeddingPerturbation,
    adversarial_delta,
    adversarial_loss,
    irrelevant_mask,
    irrelevant_spans,
)
from modprobe.finetune.answer import answer_logits, answer_loss
from modprobe.finetune.losses import attention_calibration_loss, consistency_loss
from modprobe.finetune.step import TERMS, LossConfig, TrainBatch, check_batch, compute_losses

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
