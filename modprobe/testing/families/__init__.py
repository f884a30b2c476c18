"""Tiny models of image-text-to-text families that modprobe reaches through the generic adapter.

Each entry of :data:`TINY_FAMILIES` builds a family's real transformers class from its
own config class, shrunk (a 3-layer language model of width 64, a 2-layer vision tower
on 32-pixel images), with a processor whose token layout is the real one: the family's
processor class around a word-level tokenizer holding the family's special tokens, and a
chat template shaped like the released checkpoint's (BOS written by the template where
the real one writes it). Where the real image processor needs torchvision (not
installed), :class:`StandInImageProcessor` produces pixel values of the shape the model
expects (Llama 4), or a stand-in processor reproduces the real layout (Mistral 3's
Pixtral). One module per family group: :mod:`.gemma`, :mod:`.llama`, :mod:`.cohere`,
:mod:`.qwen`, :mod:`.mistral`.

```python
from modprobe.testing.families import build_family
folder = build_family("gemma3", "/tmp/tiny-gemma3")
lm = modprobe.load(folder, dtype="float32")
```
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modprobe.testing.families.cohere import AYA_TEMPLATE, aya_vision
from modprobe.testing.families.common import IMAGE_SIZE, PATCH_SIZE
from modprobe.testing.families.gemma import GEMMA3_TEMPLATE, gemma3, paligemma, paligemma2
from modprobe.testing.families.llama import (
    IDEFICS3_TEMPLATE,
    LLAMA4_TEMPLATE,
    MLLAMA_TEMPLATE,
    StandInImageProcessor,
    idefics3,
    llama4,
    mllama,
)
from modprobe.testing.families.mistral import MISTRAL3_TEMPLATE, mistral3
from modprobe.testing.families.qwen import OMNI_TEMPLATE, qwen2_5_omni_thinker, qwen3_vl


@dataclass(frozen=True)
class TinyFamily:
    """How to build one family's tiny model and how modprobe is expected to treat it.

    Attributes:
        model_type: ``config.model_type`` (a key of transformers' image-text-to-text map).
        build: Returns ``(config, processor)``.
        attn_implementation: The kernel the capture runs on (``"eager"`` where SDPA is
            refused, e.g. soft-capped attention).
        attention: Whether attention mass is captured (False: refused, lens only).
        stand_in: The processor holds a stand-in part that does not save and reload
            (:func:`load_family` builds such families in memory).
        upstream_error: The error the model's own forward raises in transformers before
            ``upstream_fixed_in`` (the family cannot run at all, so there is nothing to
            capture).
        upstream_fixed_in: The first transformers version whose forward runs the family
            ("" while none does); from there on it is in the exactness matrix.
        sharpen: Factor for :func:`modprobe.capture.reference.sharpen_attention` in tests
            (attention scores times its square): smaller for families that normalise
            queries and keys, whose random scores are not near zero to begin with.
        note: What the family exercises.
    """

    model_type: str
    build: Callable[[], tuple[Any, Any]]
    attn_implementation: str = "sdpa"
    attention: bool = True
    sharpen: float = 8.0
    stand_in: bool = False
    upstream_error: str = ""
    upstream_fixed_in: str = ""
    note: str = ""

    def runs_upstream(self) -> bool:
        """Whether the installed transformers runs this family's own forward."""
        if not self.upstream_error:
            return True
        if not self.upstream_fixed_in:
            return False
        import transformers
        from packaging.version import Version

        return Version(transformers.__version__) >= Version(self.upstream_fixed_in)


#: Families of the matrix, in test order.
TINY_FAMILIES: dict[str, TinyFamily] = {f.model_type: f for f in (
    TinyFamily("gemma3", gemma3, sharpen=1.5, note="token_type_ids, sliding window, template BOS"),
    TinyFamily("paligemma", paligemma, note="no template, token_type_ids, labels"),
    TinyFamily("paligemma2", paligemma2, attn_implementation="eager",
               note="soft-capped attention and logits (SDPA refused)"),
    TinyFamily("mllama", mllama, attention=False,
               note="cross-attention layers: lens only, attention refused"),
    TinyFamily("idefics3", idefics3, note="tiled images, pixel_attention_mask, template BOS"),
    TinyFamily("aya_vision", aya_vision,
               note="sliding-window RoPE layers + a NoPE full layer (Cohere2), template BOS"),
    TinyFamily("qwen2_5_omni_thinker", qwen2_5_omni_thinker,
               note="M-RoPE, audio/video tokens, processor listed under another type"),
    TinyFamily("qwen3_vl", qwen3_vl, sharpen=1.5,
               note="interleaved M-RoPE, query/key norms, DeepStack features"),
    TinyFamily("mistral3", mistral3, stand_in=True,
               note="Pixtral rows, image_sizes, template BOS, stand-in processor"),
    TinyFamily("llama4", llama4, stand_in=True, sharpen=1.5,
               note="chunked and NoPE layers, MoE, stand-in image processor",
               upstream_error="'MoeCausalLMOutputWithPast' object has no attribute 'image_outputs'",
               upstream_fixed_in="5.25"),
)}


def build_family(name: str, out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Build a tiny model of a :data:`TINY_FAMILIES` entry and save it with its processor.

    Args:
        name: The family.
        out_dir: The folder written.
        seed: Seed of the random weights.

    Returns:
        The folder; ``modprobe.load(folder)`` loads it.
    """
    if name not in TINY_FAMILIES:
        raise ValueError(f"no tiny model for {name!r}; use one of {', '.join(TINY_FAMILIES)}")
    from transformers import AutoModelForImageTextToText

    config, processor = TINY_FAMILIES[name].build()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).eval()
    _wake_zero_weights(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _wake_zero_weights(model: torch.nn.Module) -> None:
    """Give zero-initialised gates and projections values, so the image reaches the LM."""
    with torch.no_grad():
        # Gates initialised at zero (Mllama's cross-attention gates) would keep the image
        # out of the language model altogether; open them so the image matters.
        for pname, param in model.named_parameters():
            if pname.endswith("_gate") and param.numel() == 1 and float(param) == 0:
                param.fill_(1.0)
            # likewise all-zero projection matrices (Gemma 3's mm_input_projection_weight)
            elif param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.02)


def load_family(name: str, attn_implementation: str = "sdpa", seed: int = 0,
                folder: str | os.PathLike[str] | None = None) -> Any:
    """A :class:`modprobe.LoadedModel` of a :data:`TINY_FAMILIES` entry (float32, CPU).

    From ``folder`` (written by :func:`build_family`) through :func:`modprobe.load`, or,
    for families with a stand-in processor part (which does not reload), built in memory
    with the same seed (same weights) and wrapped the way ``load`` wraps it.

    Args:
        name: The family.
        attn_implementation: ``"sdpa"`` or ``"eager"``.
        seed: Seed of the random weights.
        folder: The folder :func:`build_family` wrote (None: build in memory).

    Returns:
        The loaded model.
    """
    import modprobe

    spec = TINY_FAMILIES[name]
    if not spec.stand_in:
        if folder is None:
            raise ValueError(f"{name} loads from a folder: pass folder=build_family(...)")
        return modprobe.load(folder, dtype="float32", device="cpu",
                             attn_implementation=attn_implementation)
    from nnsight import NNsight
    from transformers import AutoModelForImageTextToText

    from modprobe.adapters import adapter_for
    from modprobe.loading import LoadedModel

    config, processor = spec.build()
    torch.manual_seed(seed)
    module = AutoModelForImageTextToText.from_config(
        config, attn_implementation=attn_implementation).eval()
    _wake_zero_weights(module)
    return LoadedModel(model=NNsight(module), processor=processor,
                       adapter=adapter_for(module, processor), name=name, source="memory")


__all__ = [
    "AYA_TEMPLATE", "GEMMA3_TEMPLATE", "IDEFICS3_TEMPLATE", "IMAGE_SIZE", "LLAMA4_TEMPLATE",
    "MISTRAL3_TEMPLATE", "MLLAMA_TEMPLATE", "OMNI_TEMPLATE", "PATCH_SIZE", "TINY_FAMILIES",
    "StandInImageProcessor", "TinyFamily", "aya_vision", "build_family", "gemma3", "idefics3",
    "llama4", "load_family", "mistral3", "mllama", "paligemma", "paligemma2",
    "qwen2_5_omni_thinker", "qwen3_vl",
]
