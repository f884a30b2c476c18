"""Array conversion shared by the statistics and the analyses (no torch import)."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(values: Any, dtype: Any = np.float64) -> np.ndarray:
    """Convert a numpy array, torch tensor, pandas object or sequence to numpy.

    Torch tensors are detached and moved to the CPU without importing torch here: a
    tensor is recognised by its ``detach`` method.

    Args:
        values: Array-like input of any shape.
        dtype: Target dtype, or ``None`` to keep the input's.

    Returns:
        A numpy array with the same shape.
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
        if dtype is not None and str(values.dtype) in ("torch.bfloat16", "torch.float16"):
            values = values.float()
        values = values.numpy()
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    return np.asarray(values, dtype=dtype)
