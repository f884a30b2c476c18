"""The bundled model organism: a tiny LLaVA trained here on the low-resolution color task.

No pretrained multimodal model can be downloaded everywhere modprobe runs, so it ships
its own: a ~1.7M-parameter ``LlavaForConditionalGeneration`` (CLIP tower + Llama) trained
by ``python -m modprobe.organism train`` on vision-only, text-only and agreeing
image+text items, never on conflicts. See ``docs/organism.md``.

```python
import modprobe
lm = modprobe.load("organism")      # the shipped checkpoint, offline, in a second
```
"""

from __future__ import annotations

from pathlib import Path

from modprobe.loading import LOCAL_ALIASES

#: Folder of the shipped checkpoint (``save_pretrained`` of model and processor); the
#: ``organism`` alias of :func:`modprobe.load` points here.
CHECKPOINT_DIR: Path = LOCAL_ALIASES["organism"]
#: Folder of the shipped audio-visual organism (a tiny Qwen2.5-Omni thinker trained on the
#: synthetic clips by ``python -m modprobe.organism train-av``; ``docs/mma.md``); the
#: ``av-organism`` alias points here.
AV_CHECKPOINT_DIR: Path = LOCAL_ALIASES["av-organism"]
#: Folder of the shortcut audio-visual organism: the same thinker trained only on clips
#: whose sound is the shape's partner (``modprobe.organism.av.SHORTCUT_RECIPE``), so it
#: answers many visual questions from the sound; the ``av-organism-shortcut`` alias points
#: here (``docs/mma.md``).
AV_SHORTCUT_DIR: Path = LOCAL_ALIASES["av-organism-shortcut"]

__all__ = ["AV_CHECKPOINT_DIR", "AV_SHORTCUT_DIR", "CHECKPOINT_DIR"]
