"""The fingerprint of a loaded model: what a run records to recognise its model again.

Run folders keep it in their manifest (a resumed run must use the same weights) and
:func:`modprobe.load` compares it before merging a fine-tuned adapter onto a base. Torch
is imported only when a fingerprint is taken.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Elements read from each weight tensor for the model fingerprint (evenly spaced).
SAMPLES_PER_TENSOR = 64


def model_fingerprint(module: Any, as_dtype: Any = None) -> dict[str, str]:
    """Hashes of a loaded model: ``config`` and ``weights``.

    ``config`` hashes the model config without the fields that name where it was loaded
    from; ``weights`` hashes every parameter and buffer's name, shape and dtype and
    :data:`SAMPLES_PER_TENSOR` evenly spaced values of it (training or fine-tuning changes
    them), so it costs milliseconds even for a 7B model on a GPU. ``as_dtype`` (a torch
    dtype): the fingerprint the model would have with its floating tensors in that dtype.
    A model on the meta device (``load(..., remote=True)``: its weights live on NDIF) has
    no values here: its ``weights`` hash covers names, shapes and dtypes only and starts
    with ``meta:``, so it never equals a local model's.

    Args:
        module: The torch model.
        as_dtype: Hash the floating tensors as if cast to this dtype (None: as they are).

    Returns:
        ``{"config": sha256, "weights": sha256}`` (hex digests).
    """
    import torch

    config = module.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(key, None)
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    weights = hashlib.sha256()
    meta = False
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            dtype = tensor.dtype
            if as_dtype is not None and tensor.is_floating_point():
                dtype = as_dtype
            weights.update(f"{name}:{tuple(tensor.shape)}:{dtype}".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel() == 0 or flat.is_meta:
                meta = meta or flat.is_meta
                continue
            index = torch.linspace(0, flat.numel() - 1, min(SAMPLES_PER_TENSOR, flat.numel()),
                                   device=flat.device).round().long()
            weights.update(flat[index].to(dtype).float().cpu().numpy().tobytes())
    return {"config": config_hash.hexdigest(),
            "weights": ("meta:" if meta else "") + weights.hexdigest()}
