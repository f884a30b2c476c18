"""Remote models: traces run on NDIF, or through nnsight's local simulation of it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modprobe.adapters import adapter_for
from modprobe.errors import ModprobeError
from modprobe.loading.model import LoadedModel
from modprobe.loading.processors import load_processor


def load_remote(source: str, name: str, remote: bool | str, load_local: Callable[..., LoadedModel],
                *, device: Any, dtype: Any, attn_implementation: str,
                device_map: Any) -> LoadedModel:
    """:func:`modprobe.load` with ``remote=True`` (NDIF) or ``remote="local"`` (its simulation).

    Args:
        source: The resolved hub id or folder.
        name: What the user asked for, kept as :attr:`LoadedModel.name`.
        remote: ``True`` (NDIF) or ``"local"`` (nnsight's local simulation).
        load_local: Loads the weights here for ``"local"`` (:func:`modprobe.load`, passed
            in so the two modules do not import each other).
        device: Where ``"local"`` puts the weights.
        dtype: The weights' dtype for ``"local"``.
        attn_implementation: The attention kernel for ``"local"``.
        device_map: Must be None: NDIF places a remote model itself.

    Returns:
        The model wrapped in nnsight's ``TransformersModel``, every trace remote.

    Raises:
        ModprobeError: a ``remote`` value other than the two, a device map, a fine-tuning
            run, or a local folder with ``remote=True``.
    """
    if remote is not True and remote != "local":
        raise ModprobeError(f"remote must be True (NDIF) or 'local' (nnsight's local "
                            f"simulation of a remote run), got {remote!r}")
    if device_map is not None:
        raise ModprobeError("remote and device_map both given: a remote model is placed "
                            "by NDIF; drop device_map")
    folder = Path(source)
    if folder.is_dir() and (folder / "adapter_config.json").is_file():
        raise ModprobeError(f"{source!r} is a fine-tuning run folder: its adapter exists "
                            "only here, so it cannot run remotely; load it without remote=")
    if remote is True and folder.is_dir():
        raise ModprobeError(f"remote=True runs on NDIF, which only runs hub models it hosts; "
                            f"{source!r} is a local folder. Pass the hub id, or "
                            "remote='local' to check the traces here")
    from nnsight.modeling.transformers import TransformersModel

    if remote == "local":
        local = load_local(source, device=device, dtype=dtype,
                           attn_implementation=attn_implementation)
        module, processor = local.module, local.processor
    else:
        processor = load_processor(source, trust_remote_code=False,
                                   local_files_only=False)
        module = source  # nnsight builds it on the meta device from the hub's config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VisionLanguageModel-era deprecation notes
        wrapped = TransformersModel(module, task="image-text-to-text", processor=processor)
    adapter = adapter_for(wrapped._module, processor)
    adapter.token_ids(wrapped._module.config)
    return LoadedModel(model=wrapped, processor=processor, adapter=adapter, name=name,
                       source=source, remote=remote)

