"""Fine-tuning on the capture hooks: losses, LoRA, and the trainer. See ``docs/finetune.md``.

```python
import modprobe
from modprobe.finetune import LossConfig, TrainConfig, train

lm = modprobe.load("organism")
train(lm, "data/interference", TrainConfig(out="runs/ft", loss=LossConfig(calibration=1.0)))
tuned = modprobe.load("runs/ft")
```
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LossConfig": "modprobe.finetune.step",
    "TrainBatch": "modprobe.finetune.step",
    "compute_losses": "modprobe.finetune.step",
    "LoraSettings": "modprobe.finetune.lora",
    "LoraTargetError": "modprobe.finetune.lora",
    "TrainConfig": "modprobe.finetune.config",
    "FinetuneDataError": "modprobe.finetune.data",
    "FinetuneError": "modprobe.finetune.trainer",
    "TrainResult": "modprobe.finetune.trainer",
    "train": "modprobe.finetune.trainer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modprobe.finetune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
