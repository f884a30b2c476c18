"""The errors :func:`modprobe.load` raises, and how it tells broken weights from a bug."""

from __future__ import annotations

import pickle

from modprobe.errors import ModprobeError


class ModelNotFoundError(ModprobeError, FileNotFoundError):
    """The requested model is neither a known alias, a local folder, nor reachable."""


class ModelLoadError(ModprobeError):
    """The model's files are there but cannot be loaded.

    Truncated or corrupt weights, a pickle checkpoint that is not plain tensors, or a
    broken config.
    """


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its class name when it has none.

    Args:
        err: The exception a library raised.

    Returns:
        Text short enough to quote in a one-line error.
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def is_corrupt_weights(err: BaseException) -> bool:
    """Whether ``err`` comes from unreadable weight files rather than from a bug.

    Args:
        err: What transformers, safetensors or torch raised while reading weights.

    Returns:
        True for the errors of truncated, corrupt or pickled weight files.
    """
    name = type(err).__name__
    if name in ("SafetensorError", "UnpicklingError", "HeaderTooLarge", "HeaderTooSmall"):
        return True
    text = str(err)
    return any(marker in text for marker in (
        "Error while deserializing header", "Weights only load failed", "PytorchStreamReader",
        "invalid load key", "Unable to load weights", "unexpected EOF", "is truncated",
        "not a valid JSON", "Expecting value"))


def corrupt_message(source: str, err: BaseException) -> str:
    """The message of the :class:`ModelLoadError` for unreadable weights.

    Args:
        source: The folder or hub id whose weights failed to load.
        err: The error :func:`is_corrupt_weights` recognised.

    Returns:
        One line naming the model and the fix (convert a pickle, or copy the files again).
    """
    if "Weights only load failed" in str(err) or isinstance(err, pickle.UnpicklingError):
        return (f"the weights in {source!r} are a pickle checkpoint holding more than plain "
                "tensors, which modprobe never unpickles (it could run arbitrary code); "
                "convert it to safetensors where you trust the source (save_pretrained "
                "writes safetensors by default)")
    return (f"the model files in {source!r} are truncated or corrupt ({first_line(err)}); "
            "copy or download the checkpoint again")
