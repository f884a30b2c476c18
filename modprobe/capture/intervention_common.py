"""What knockout and patching share: their error, layer checks and how they read logits.

Both interventions encode prompts the same way (:func:`encode_batch`), refuse layers out
of range (:func:`check_layers`), read a decoder layer's residual stream
(:func:`layer_output`) and the logits at the answer positions as the capture does
(:func:`logit_setup`, :func:`clean_logits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from modprobe.capture.attention import gather_positions
from modprobe.capture.trace import _last_logits_only, forward_kwargs
from modprobe.errors import ModprobeError


class InterventionError(ModprobeError, ValueError):
    """A knockout or patch that cannot be made (a missing span, a layer out of range)."""


def check_layers(layers: Iterable[int], n_layers: int) -> list[int]:
    """Sorted, distinct decoder layers, refused when one is out of range.

    Args:
        layers: The decoder layers asked for.
        n_layers: How many decoder layers the model has.

    Returns:
        The layers, sorted, each once.

    Raises:
        InterventionError: no layer, or one outside ``0..n_layers-1``.
    """
    out = sorted({int(i) for i in layers})
    bad = [i for i in out if i < 0 or i >= n_layers]
    if not out or bad:
        raise InterventionError(
            f"layers {bad or '[]'} out of range: this model has {n_layers} decoder layers; "
            f"choose layers in 0..{n_layers - 1}")
    return out


def layer_output(envoy: Any) -> Any:
    """The output of a decoder layer's envoy: its residual stream, `batch seq hidden`.

    Args:
        envoy: The nnsight envoy of one decoder layer.

    Returns:
        The saved-or-editable hidden states (transformers 5 layers return a tensor,
        older ones a tuple whose first item it is).
    """
    out = envoy.output
    return out[0] if isinstance(out, tuple) else out


def logit_setup(loaded: Any, inputs: Mapping[str, Any],
                 positions: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
    """Forward kwargs and where to read the logits, as the capture reads them.

    When every query position is the last one, only the last position's logits are
    computed (``logits_to_keep=1``), and they are read at index 0.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        inputs: An encoded batch.
        positions: `batch` query position of each row.

    Returns:
        ``(forward kwargs, positions to read the logits at)``.
    """
    kwargs = forward_kwargs(loaded, dict(inputs))
    positions = positions.to(loaded.device)
    if _last_logits_only(loaded.module, kwargs, positions):
        kwargs["logits_to_keep"] = 1
        return kwargs, torch.zeros_like(positions)
    return kwargs, positions


def encode_batch(loaded: Any, prompts_or_batch: Any) -> dict[str, Any]:
    """An encoded batch: ``prompts_or_batch`` itself when it is one, else its encoding.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        prompts_or_batch: Prompts, or a batch ``loaded.encode`` returned.

    Returns:
        The batch as a new dict.
    """
    if isinstance(prompts_or_batch, Mapping):
        return dict(prompts_or_batch)
    return loaded.encode(list(prompts_or_batch))


def clean_logits(loaded: Any, batch: Mapping[str, Any], positions: torch.Tensor) -> torch.Tensor:
    """`batch vocab` the model's own logits at ``positions`` (no intervention).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        batch: An encoded batch.
        positions: `batch` position of each row to read (the answer positions).

    Returns:
        The logits, one row per batch row.
    """
    model = loaded.model
    kwargs, logit_positions = logit_setup(loaded, batch, positions)
    with torch.no_grad(), model.trace(**kwargs):
        final = gather_positions(model.output.logits, logit_positions, dim=1).save()
    return final
