"""Optional transformer-lens backend: an independent cross-check of modprobe's capture.

transformer-lens 4.x wraps a transformers model in a ``TransformerBridge`` whose hook
points (``blocks.{i}.hook_resid_post``, ``blocks.{i}.attn.hook_pattern``, ...) see the
same forward pass through different instrumentation. :func:`tl_lens_and_attention`
rebuilds modprobe's two core measurements from those hooks (the logit lens and the
answer-position attention rows), so that a disagreement with :mod:`modprobe.capture`
points at a bug in one of the two.

```python
from modprobe.tl import boot_bridge, tl_lens_and_attention
bridge = boot_bridge(loaded)                  # a modprobe.LoadedModel (copied) or a folder
lens, rows = tl_lens_and_attention(bridge, loaded.encode(prompts))
```

Install with ``pip install modprobe[tl]``; ``import modprobe`` never needs it.

**Guarded on boot.** When transformer-lens cannot load a multimodal processor it runs
``pip install torchvision`` in a subprocess (``_ensure_torchvision``), and its Qwen2.5-VL
adapter refuses to boot unless torchvision is importable. Installing torchvision into a
CPU-only environment resolves a different (CUDA) torch and breaks transformers, and
modprobe never needs torchvision: its processors are the PIL ones and the bridge is fed
an already-processed batch. :func:`no_runtime_installs` therefore disables both for the
duration of a boot (and refuses any ``pip install`` subprocess as a backstop).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import torch

try:
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.model_bridge.architecture_adapter import ArchitectureAdapter
    from transformer_lens.model_bridge.sources.transformers import helpers as _tl_helpers
    from transformer_lens.model_bridge.sources.transformers import source as _tl_source
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "modprobe.tl needs transformer-lens (>=4.3,<5), which is an optional extra: "
        "pip install modprobe[tl]   (or: pip install 'transformer-lens>=4.3,<5')"
    ) from err

from modprobe.loading import LoadedModel
from modprobe.spans import ModalitySpans

__all__ = [
    "TL_FAMILIES",
    "RuntimeInstallRefused",
    "boot_bridge",
    "no_runtime_installs",
    "tl_lens_and_attention",
]

#: modprobe families whose TransformerBridge boots and cross-checks here (tested on tiny
#: models). transformer-lens 4.3 has no adapter for Qwen2-VL or InstructBLIP.
TL_FAMILIES: tuple[str, ...] = ("llava", "llava_next", "qwen2_5_vl")

#: Libraries whose load-time requirement check modprobe switches off (see module doc).
_UNNEEDED_LIBRARIES: frozenset[str] = frozenset({"torchvision"})


class RuntimeInstallRefused(RuntimeError):
    """Something tried to ``pip install`` a package while a bridge was booting."""


def _is_pip_install(args: Any) -> bool:
    """Whether a subprocess command line is a ``pip install`` (``python -m pip``, ``uv pip``)."""
    if isinstance(args, (str, bytes)):
        words = (args.decode() if isinstance(args, bytes) else args).split()
    else:
        words = [os.fspath(a) if not isinstance(a, bytes) else a.decode() for a in args]
    names = [os.path.basename(w) for w in words]
    return "install" in names and any(n == "pip" or n.startswith("pip3") for n in names)


def _torchvision_importable() -> bool:
    """Replacement for transformer-lens' ``_ensure_torchvision``: look, never install."""
    return importlib.util.find_spec("torchvision") is not None


@contextlib.contextmanager
def no_runtime_installs() -> Iterator[None]:
    """Boot transformer-lens bridges without it installing or demanding torchvision.

    Inside the block:

    * ``transformer_lens...helpers._ensure_torchvision`` only reports whether torchvision
      is importable instead of running ``pip install torchvision`` (a failed processor
      load then leaves ``bridge.processor`` unset, which modprobe does not use);
    * adapters skip the torchvision entry of ``required_libraries`` (Qwen2.5-VL's),
      other required libraries are still checked;
    * any ``subprocess`` command line that is a ``pip install`` raises
      :class:`RuntimeInstallRefused` (a backstop for install paths not patched above).

    Everything is restored on exit, also on error.
    """
    original_popen = subprocess.Popen
    original_check = ArchitectureAdapter._check_required_libraries

    class _GuardedPopen(original_popen):  # type: ignore[misc, valid-type]
        # A subclass (not a function) so isinstance checks on Popen keep working; every
        # subprocess helper (run, call, check_call, check_output) goes through Popen.
        def __init__(self, args: Any, *pargs: Any, **kwargs: Any) -> None:
            if _is_pip_install(args):
                raise RuntimeInstallRefused(
                    f"refused to run {args!r} while booting a transformer-lens bridge: "
                    "modprobe never installs packages at runtime (torchvision in particular "
                    "would replace the installed torch)")
            super().__init__(args, *pargs, **kwargs)

    def check_without_unneeded(adapter: ArchitectureAdapter) -> None:
        # An instance attribute shadows the class list for this adapter only.
        adapter.required_libraries = [
            lib for lib in type(adapter).required_libraries if lib not in _UNNEEDED_LIBRARIES]
        original_check(adapter)

    patches: list[tuple[Any, str, Any]] = [
        (_tl_helpers, "_ensure_torchvision", _torchvision_importable),
        (ArchitectureAdapter, "_check_required_libraries", check_without_unneeded),
        (subprocess, "Popen", _GuardedPopen),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


@contextlib.contextmanager
def _processor_from(processor: Any) -> Iterator[None]:
    """Hand the bridge modprobe's processor instead of loading one from ``model_name``.

    Loading it again could reach the hub (``model_name`` may be a hub id) and is the
    path that ends in transformer-lens' torchvision install.
    """
    original = _tl_source.load_modality_processor

    def attach(bridge: Any, *_args: Any, **_kwargs: Any) -> None:
        bridge.processor = processor

    _tl_source.load_modality_processor = attach
    try:
        yield
    finally:
        _tl_source.load_modality_processor = original


def boot_bridge(
    model: LoadedModel | str | os.PathLike[str],
    *,
    copy_module: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> TransformerBridge:
    """Boot a transformer-lens ``TransformerBridge`` with runtime installs disabled.

    The bridge rewires the model it wraps in place (bridge components replace its
    submodules) and needs eager attention for its attention-pattern hooks. So from a
    :class:`~modprobe.loading.LoadedModel` it wraps a deep copy by default, leaving the
    loaded model (and its nnsight wrapper) untouched.

    Args:
        model: A loaded modprobe model, or a local folder written by ``save_pretrained``
            (transformer-lens then loads the weights itself, on ``device`` in ``dtype``).
        copy_module: From a LoadedModel, wrap a copy (True) or the model itself (False:
            no extra memory for large models, but the LoadedModel is rewired for good and
            switched to eager attention; do not capture with it afterwards).
        device: Device of a model booted from a folder (default: transformer-lens' pick).
            From a LoadedModel the model stays where it is.
        dtype: dtype of a model booted from a folder (default float32). From a
            LoadedModel the model keeps its own dtype.

    Returns:
        The bridge. ``bridge.processor`` is the LoadedModel's processor (from a folder:
        whatever transformer-lens could load without torchvision, possibly unset).

    Raises:
        RuntimeInstallRefused: if booting still tried to ``pip install`` something.
        ValueError: if transformer-lens has no adapter for the model's architecture
            (Qwen2-VL and InstructBLIP in transformer-lens 4.3).
    """
    try:
        with no_runtime_installs():
            if not isinstance(model, LoadedModel):
                kwargs: dict[str, Any] = {"device": device}
                if dtype is not None:
                    kwargs["dtype"] = dtype
                return TransformerBridge.boot_transformers(os.fspath(model), **kwargs)

            module = copy.deepcopy(model.module) if copy_module else model.module
            # The multimodal adapters pin "eager" in their config, and boot() then leaves
            # a pre-loaded model's attention kernel alone: under SDPA the pattern hooks of
            # HF-native attention (Qwen2.5-VL) would never fire.
            module.set_attn_implementation("eager")
            # boot() normalises the tokenizer in place (padding side, BOS handling).
            tokenizer = copy.deepcopy(model.tokenizer)
            param = next(module.parameters())
            with _processor_from(model.processor):
                return TransformerBridge.boot_transformers(
                    model.source, hf_model=module, tokenizer=tokenizer,
                    device=param.device, dtype=param.dtype)
    except ValueError as err:
        if "supported architecture" not in str(err):
            raise
        what = (f"{type(model.module).__name__} (modprobe family {model.adapter.family!r})"
                if isinstance(model, LoadedModel) else repr(os.fspath(model)))
        raise ValueError(
            f"transformer-lens has no bridge for {what}; the cross-check covers "
            f"{', '.join(TL_FAMILIES)}") from None


def _model_kwargs(bridge: TransformerBridge, batch: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``bridge.run_with_cache`` for a processor batch.

    transformers' LLaVA-style forward numbers positions ``0..seq-1`` on every row, left
    padding included, while the bridge renumbers left-padded rows from the attention
    mask. modprobe measures the transformers forward, so the cross-check pins the same
    positions. (Under plain RoPE a whole-row shift cancels out, so this only matters for
    position schemes that are not purely relative; mRoPE families derive their positions
    inside the model and are left alone, as the bridge itself does.)
    """
    kwargs = {k: v for k, v in batch.items()
              if k not in ("input_ids", "token_type_ids", "context_mask")}
    derives_positions = getattr(bridge, "_accepts_derived_position_ids", lambda: False)()
    if "position_ids" not in kwargs and derives_positions:
        input_ids = batch["input_ids"]
        kwargs["position_ids"] = torch.arange(
            input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)
    return kwargs


@torch.no_grad()
def tl_lens_and_attention(
    bridge_or_loaded: TransformerBridge | LoadedModel,
    batch: Mapping[str, Any],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logit lens and attention rows at the answer position, through transformer-lens.

    The answer position of a row is its last attended token (as
    :meth:`modprobe.spans.ModalitySpans.answer_positions`). For each decoder layer ``i``
    the lens is ``unembed(ln_final(blocks.{i}.hook_resid_post))`` and the attention row
    is ``blocks.{i}.attn.hook_pattern`` at that query position, i.e. the quantities
    modprobe's capture computes from the same forward pass.

    Args:
        bridge_or_loaded: A bridge from :func:`boot_bridge`, or a LoadedModel (a bridge is
            then booted on a copy for this one call; boot once and reuse it for many).
        batch: A processor batch (``loaded.encode(prompts)``): ``input_ids``,
            ``attention_mask`` and the family's pixel inputs, on the model's device.

    Returns:
        ``(lens_logits, attention_rows)``: `batch layer vocab` and
        `batch layer head seq` float32 tensors.

    Note:
        ``run_with_cache`` keeps each layer's full `batch head seq seq` pattern until the
        rows are picked, so memory grows with ``seq**2``; cross-check on small batches.
    """
    bridge = (boot_bridge(bridge_or_loaded) if isinstance(bridge_or_loaded, LoadedModel)
              else bridge_or_loaded)
    input_ids = batch["input_ids"]
    attention_mask = batch.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    positions = ModalitySpans.from_masks(attention_mask).answer_positions()
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    n_layers = bridge.cfg.n_layers

    resid_names = [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]
    pattern_names = [f"blocks.{i}.attn.hook_pattern" for i in range(n_layers)]
    _, cache = bridge.run_with_cache(
        input_ids, names_filter=[*resid_names, *pattern_names], **_model_kwargs(bridge, batch))
    missing = [n for n in (*resid_names, *pattern_names) if n not in cache]
    if missing:
        raise RuntimeError(
            f"the bridge did not record {missing[:3]}...: its attention kernel returned no "
            "pattern (boot it with boot_bridge, which switches the model to eager attention)")

    resid = torch.stack([cache[n][rows, positions] for n in resid_names], dim=1)
    lens_logits = bridge.unembed(bridge.ln_final(resid))
    # pattern: `batch head query key`; row b keeps query positions[b] -> `batch head key`.
    attention_rows = torch.stack(
        [cache[n].transpose(1, 2)[rows, positions] for n in pattern_names], dim=1)
    return lens_logits.float(), attention_rows.float()
