"""Load a multimodal model, its processor and its adapter, wrapped for nnsight.

```python
import modprobe
lm = modprobe.load("llava")                 # alias of llava-hf/llava-1.5-7b-hf
lm = modprobe.load("/models/tiny-llava")    # a local folder works the same way
batch = lm.encode([modprobe.Prompt("What color is the circle?", images=[img])])
print(lm.spans(batch).describe(0))
```

The parts: :mod:`~modprobe.loading.sources` (aliases, folders, fine-tuning runs),
:mod:`~modprobe.loading.loader` (:func:`load`), :mod:`~modprobe.loading.model`
(:class:`LoadedModel`), :mod:`~modprobe.loading.processors`,
:mod:`~modprobe.loading.finetuned` (LoRA adapters merged onto their base),
:mod:`~modprobe.loading.remote` (NDIF), :mod:`~modprobe.loading.placement` (device maps)
and :mod:`~modprobe.loading.errors`.
"""

from __future__ import annotations

from modprobe.loading.errors import ModelLoadError, ModelNotFoundError
from modprobe.loading.loader import load
from modprobe.loading.model import LoadedModel
from modprobe.loading.placement import DEVICE_MAP_NAMES, parse_device_map
from modprobe.loading.processors import image_only_processor_class, load_processor
from modprobe.loading.sources import ALIASES, LOCAL_ALIASES, finetuned_model_dir, resolve_source

__all__ = [
    "ALIASES", "DEVICE_MAP_NAMES", "LOCAL_ALIASES", "LoadedModel", "ModelLoadError",
    "ModelNotFoundError", "finetuned_model_dir", "image_only_processor_class", "load",
    "load_processor", "parse_device_map", "resolve_source",
]
