"""modprobe: how multimodal language models follow (or ignore) each modality.

```python
import modprobe
lm = modprobe.load("llava")
```

See ``docs/`` for the capture engine, the analyses and the study runner.
"""

from modprobe.adapters import ADAPTERS, Adapter, AdapterError, Prompt, adapter_for
from modprobe.loading import ALIASES, LoadedModel, ModelNotFoundError, load
from modprobe.spans import SPAN_NAMES, ModalitySpans

__version__ = "0.1.0"

__all__ = [
    "ADAPTERS",
    "ALIASES",
    "SPAN_NAMES",
    "Adapter",
    "AdapterError",
    "LoadedModel",
    "ModalitySpans",
    "ModelNotFoundError",
    "Prompt",
    "adapter_for",
    "load",
]
