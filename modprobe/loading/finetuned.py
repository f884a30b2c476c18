"""Loading a fine-tuning run: its base model with the LoRA adapter merged in."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from modprobe.fingerprint import model_fingerprint
from modprobe.loading.errors import (
    ModelLoadError,
    ModelNotFoundError,
    first_line,
    is_corrupt_weights,
)
from modprobe.loading.model import LoadedModel

#: Adapter folders whose base model is being loaded (a base that leads back is a cycle).
_ADAPTERS_LOADING: set[str] = set()


def _adapter_base(folder: Path) -> str:
    """``base_model_name_or_path`` of the adapter in ``folder``.

    Raises:
        ModelLoadError: ``adapter_config.json`` is not UTF-8 JSON or names no base.
    """
    path = folder / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{str(path)!r} is not valid JSON ({err}); copy the run again, "
                             "or train again") from None
    base_name = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base_name, str) or not base_name:
        raise ModelNotFoundError(f"{str(folder)!r} holds a LoRA adapter without "
                                 "base_model_name_or_path in adapter_config.json")
    return base_name


def _check_base_fingerprint(folder: Path, base: LoadedModel, base_name: str,
                            verify_base: bool, requested_dtype: Any) -> None:
    """Refuse to merge a run's adapter onto base weights other than those it was trained on.

    The run's ``manifest.json`` keeps the base model's fingerprint
    (:func:`modprobe.fingerprint.model_fingerprint`). The fingerprint is compared in
    every dtype the base could have been trained in, so loading a bfloat16 base in float32
    passes; a base loaded in a lower precision than ``auto`` that does not match gets a
    warning instead (the check cannot tell). An adapter folder without a run manifest
    beside it is not checked.
    """
    if not verify_base:
        return
    try:
        manifest = json.loads((folder.parent / "manifest.json").read_text(encoding="utf-8"))
        recorded = manifest["fingerprints"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not isinstance(recorded, dict) or manifest.get("kind") != "finetune":
        return
    for dtype in (None, torch.float32, torch.bfloat16, torch.float16):
        if model_fingerprint(base.module, as_dtype=dtype) == recorded:
            return
    message = (f"the base model {base_name!r} is not the one the run {str(folder.parent)!r} "
               "was trained on (its weights or config fingerprint changed since training), so "
               "its adapter would be merged onto other weights; restore the original base, "
               "or train again (to merge anyway: modprobe.load(RUN, verify_base=False))")
    if requested_dtype not in (None, "auto") and base.module.dtype != torch.float32:
        # A base trained in float32 and loaded in a lower precision cannot be matched.
        warnings.warn(f"{message}; or the base was trained in a higher precision than "
                      f"dtype={requested_dtype!r}: load with dtype='auto' to check",
                      stacklevel=3)
        return
    raise ModelLoadError(message)


def load_finetuned(folder: Path, name: str, load_base: Callable[..., LoadedModel],
                   verify_base: bool = True, **load_kwargs: Any) -> LoadedModel:
    """Base model + LoRA adapter of ``folder``, merged, wrapped for nnsight.

    The adapter's ``base_model_name_or_path`` (an alias or a folder, as
    ``modprobe.finetune`` records it) is loaded with the same options; merging leaves a
    plain model of the base class, so capture and runners see no peft layers.

    Args:
        folder: A folder holding ``adapter_config.json`` (a fine-tuning run's model).
        name: What the user asked for, kept as :attr:`LoadedModel.name`.
        load_base: Loads the base model (:func:`modprobe.load`, passed in so the two
            modules do not import each other).
        verify_base: Refuse a base whose fingerprint differs from the one the run
            recorded at training.
        **load_kwargs: Options for ``load_base`` (device, dtype, ...).

    Returns:
        The merged model, wrapped for nnsight, with the base's processor and adapter.

    Raises:
        ModelLoadError: the adapter's files are unreadable, its base leads back to
            itself, or the base is not the one it was trained on.
        ModelNotFoundError: the adapter names no base model.
    """
    from nnsight import NNsight
    from peft import PeftModel

    base_name = _adapter_base(folder)
    key = str(folder.resolve())
    if key in _ADAPTERS_LOADING:
        raise ModelLoadError(
            f"the LoRA adapter in {str(folder)!r} names a base model "
            f"({base_name!r} in adapter_config.json) that leads back to itself; set "
            "base_model_name_or_path to the model it was trained on")
    _ADAPTERS_LOADING.add(key)
    try:
        base = load_base(base_name, **load_kwargs)
    finally:
        _ADAPTERS_LOADING.discard(key)
    _check_base_fingerprint(folder, base, base_name, verify_base, load_kwargs.get("dtype"))
    try:
        with warnings.catch_warnings():
            # peft asks transformers about gradient checkpointing through a deprecated name.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            merged = PeftModel.from_pretrained(base.module, str(folder)).merge_and_unload()
    except Exception as err:  # safetensors' SafetensorError derives from Exception only
        if is_corrupt_weights(err) or isinstance(err, (OSError, KeyError, ValueError)):
            raise ModelLoadError(
                f"the LoRA adapter in {str(folder)!r} cannot be read ({first_line(err)[:200]});"
                " its files are truncated, corrupt or from another base model: copy the run "
                "again, or train again") from err
        raise
    merged.eval()
    return LoadedModel(model=NNsight(merged), processor=base.processor, adapter=base.adapter,
                       name=name, source=str(folder))

