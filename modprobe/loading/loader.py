"""``modprobe.load``: a model by alias, hub id or folder, wrapped for nnsight."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from modprobe.adapters import AdapterError, adapter_for
from modprobe.checks import DTYPES, check_device, check_dtype
from modprobe.errors import ModprobeError
from modprobe.loading.errors import (
    ModelLoadError,
    ModelNotFoundError,
    corrupt_message,
    first_line,
    is_corrupt_weights,
)
from modprobe.loading.finetuned import load_finetuned
from modprobe.loading.model import LoadedModel
from modprobe.loading.placement import placement_kwargs
from modprobe.loading.processors import load_processor
from modprobe.loading.remote import load_remote
from modprobe.loading.sources import resolve_source

#: Model dtypes by name (``modprobe.checks.DTYPES``: one table for the API and the CLIs).
_DTYPES: dict[str, Any] = {name: value if value == "auto" else getattr(torch, value)
                           for name, value in DTYPES.items()}


def load(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
    verify_base: bool = True,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
    remote: bool | str = False,
) -> LoadedModel:
    """Load a model by alias, hub id or local folder, wrapped for nnsight.

    Args:
        name_or_path: An alias (``llava``, ``llava-next``, ``qwen2-vl``, ``qwen2.5-vl``,
            ``instructblip``), a hub id, a folder written by ``save_pretrained``, or the
            run folder of ``modprobe.finetune`` (base model + its LoRA adapter, merged).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available.
        dtype: ``"auto"`` (the checkpoint's), ``"float32"``, ``"bfloat16"``, ``"float16"``
            or a torch dtype.
        attn_implementation: Attention kernel; modprobe's capture works under the default
            ``"sdpa"`` and under ``"eager"``, which models with soft-capped attention
            (PaliGemma 2) need: transformers refuses SDPA for them, and ``load`` says so.
        trust_remote_code: Run code shipped with the checkpoint. Off unless you ask.
        local_files_only: Never touch the network (default: only for local folders).
        verify_base: For a fine-tuning run: refuse to merge its adapter when the base
            model's fingerprint differs from the one recorded at training (the base was
            retrained or replaced). ``False`` merges anyway.
        device_map: Shard the model over devices through accelerate instead of moving
            it to ``device``: ``"auto"`` (``"balanced"``, ``"sequential"``...) or a dict
            from module names to ``0``, ``"cuda:1"``, ``"cpu"`` or ``"disk"``
            (transformers' ``device_map``). The capture is exact under any map.
        max_memory: Memory per device for ``device_map="auto"``, e.g.
            ``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``.
        offload_folder: Where layers mapped to ``"disk"`` are kept (needed for them).
        remote: ``True``: build the model on the meta device (no weights here) and run
            every trace on NDIF through nnsight (API key: ``NDIF_API_KEY`` or nnsight's
            config); only hub ids NDIF hosts. ``"local"``: load the weights here and
            run every trace through nnsight's local simulation of a remote run, which
            serialises each trace as NDIF would (a check before a remote run).

    Returns:
        The :class:`LoadedModel`.

    Raises:
        ModelNotFoundError: unknown alias, missing folder, or weights neither cached nor
            downloadable.
        ModelLoadError: the weights are truncated or corrupt, or a pickle checkpoint
            holds more than plain tensors.
        AdapterError: the model is not an image-text-to-text model modprobe can adapt.
        ModprobeError: an unknown dtype, or a device this machine does not have.
    """
    source = resolve_source(name_or_path)
    name = os.fspath(name_or_path)
    if remote:
        return load_remote(source, name, remote, load, device=device, dtype=dtype,
                           attn_implementation=attn_implementation, device_map=device_map)
    if Path(source).is_dir() and (Path(source) / "adapter_config.json").is_file():
        return load_finetuned(Path(source), name, load, verify_base, device=device,
                              dtype=dtype, attn_implementation=attn_implementation,
                              trust_remote_code=trust_remote_code,
                              local_files_only=local_files_only)
    if isinstance(dtype, str):
        dtype = _DTYPES[check_dtype(dtype, option="dtype")]
    placement = placement_kwargs(device, device_map, max_memory, offload_folder)
    device = check_device(device, option="device") if device_map is None else None
    offline = Path(source).is_dir() if local_files_only is None else local_files_only
    module, processor = _from_pretrained(
        source, name, dtype=dtype, attn_implementation=attn_implementation,
        placement=placement, trust_remote_code=bool(trust_remote_code), local_files_only=offline)
    if device is not None:
        module.to(device)
    return _wrap(module, processor, name, source)


def _from_pretrained(source: str, name: str, *, dtype: Any, attn_implementation: str,
                     placement: dict[str, Any], **kwargs: Any) -> tuple[Any, Any]:
    """The model and processor of ``source``, with transformers' errors made one line.

    Args:
        source: The resolved hub id or folder.
        name: What the user asked for (quoted in the eager-attention hint).
        dtype: The torch dtype, or ``"auto"``.
        attn_implementation: The attention kernel.
        placement: :func:`~modprobe.loading.placement.placement_kwargs`' arguments.
        **kwargs: ``trust_remote_code`` and ``local_files_only``, for both.

    Returns:
        ``(model, processor)``.

    Raises:
        ModelNotFoundError: the files are neither here nor downloadable.
        ModelLoadError: the weights are truncated, corrupt or a pickle.
        AdapterError: not an image-text-to-text model, or an unsupported kernel.
    """
    from transformers import AutoModelForImageTextToText

    try:
        module = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, attn_implementation=attn_implementation, **placement,
            **kwargs)
        return module, load_processor(source, **kwargs)
    except OSError as err:
        if is_corrupt_weights(err):
            raise ModelLoadError(corrupt_message(source, err)) from err
        raise _not_found(source, err) from err
    except ModprobeError:
        raise
    except (ValueError, RuntimeError, pickle.UnpicklingError) as err:
        if is_corrupt_weights(err):
            raise ModelLoadError(corrupt_message(source, err)) from err
        if not isinstance(err, ValueError):
            raise
        refusal = _unsupported(source, name, attn_implementation, err)
        if refusal is None:
            raise
        raise refusal from err
    except Exception as err:  # safetensors' SafetensorError derives from Exception only
        if is_corrupt_weights(err):
            raise ModelLoadError(corrupt_message(source, err)) from err
        raise


def _not_found(source: str, err: OSError) -> ModelNotFoundError:
    """The error for a model transformers could not find, local or on the hub."""
    if Path(source).is_dir():
        return ModelNotFoundError(
            f"could not load the model in folder {source!r}: {first_line(err)}")
    return ModelNotFoundError(
        f"could not load {source!r}: its files are not in the local Hugging Face cache "
        "and the hub could not be reached (offline, HF_HUB_OFFLINE=1, or a wrong id). "
        "Download it where you have network, or pass a local folder: "
        f"modprobe.load('/path/to/model'). (transformers said: {first_line(err)})")


def _unsupported(source: str, name: str, attn_implementation: str,
                 err: ValueError) -> AdapterError | None:
    """The error for a model modprobe cannot study as loaded, or None for another error."""
    message = str(err)
    if "Unrecognized configuration class" in message or "AutoModelForImageTextToText" in message:
        return AdapterError(
            f"{source!r} is not an image-text-to-text model (AutoModelForImageTextToText "
            f"cannot load it), so modprobe has no image tokens to study: {first_line(err)}")
    if "attention implementation" in message or "does not support" in message:
        return AdapterError(
            f"transformers cannot run {source!r} with attn_implementation="
            f"{attn_implementation!r} ({first_line(err)[:160]}). Load it with eager "
            f"attention: modprobe.load({name!r}, "
            "attn_implementation='eager'); modprobe's capture is exact under eager.")
    return None


def _wrap(module: Any, processor: Any, name: str, source: str) -> LoadedModel:
    """The model in eval mode with its adapter, wrapped for nnsight.

    Raises:
        AdapterError: the family is unknown, or the model has no image token.
    """
    from nnsight import NNsight

    module.eval()
    adapter = adapter_for(module, processor)
    adapter.token_ids(module.config)  # fail early when there is no image token
    with warnings.catch_warnings():
        # BERT-style Q-Formers (InstructBLIP) have submodules named `output`; nnsight
        # renames them and warns once per module, which says nothing a user can act on.
        warnings.filterwarnings("ignore", message=r".*submodule named 'output'",
                                category=UserWarning)
        wrapped = NNsight(module)
    return LoadedModel(model=wrapped, processor=processor, adapter=adapter, name=name,
                       source=source)
