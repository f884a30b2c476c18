"""modprobe: how multimodal language models follow (or ignore) each modality.

```python
import modprobe
lm = modprobe.load("llava")
```

See ``docs/`` for the capture engine, the analyses and the study runner. Names below are
imported lazily so that torch-free parts (``modprobe.data``, ``modprobe.analysis``,
``python -m modprobe.following``) start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ADAPTERS": "modprobe.adapters",
    "Adapter": "modprobe.adapters",
    "AdapterError": "modprobe.adapters",
    "Prompt": "modprobe.adapters",
    "adapter_for": "modprobe.adapters",
    "ALIASES": "modprobe.loading",
    "LoadedModel": "modprobe.loading",
    "ModelNotFoundError": "modprobe.loading",
    "ModelLoadError": "modprobe.loading",
    "ModprobeError": "modprobe.errors",
    "load": "modprobe.loading",
    "load_run": "modprobe.run",
    "Run": "modprobe.run",
    "SPAN_NAMES": "modprobe.spans",
    "ModalitySpans": "modprobe.spans",
}

__all__ = ["ADAPTERS", "ALIASES", "SPAN_NAMES", "Adapter", "AdapterError", "LoadedModel",
           "ModalitySpans", "ModelLoadError", "ModelNotFoundError", "ModprobeError", "Prompt",
           "Run", "adapter_for", "load", "load_run"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
