"""A slow reference for the capture, built from transformers' own eager outputs.

It runs the model (loaded with ``attn_implementation="eager"``) with
``output_attentions=True`` and ``output_hidden_states=True`` and derives attention mass
and lens logits from the full `batch head seq seq` matrices and all hidden states. It
exists to test the capture engine (and to cross-check other backends), not for studies:
it materialises everything the capture avoids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modprobe.capture.attention import attention_rows_to_mass, gather_positions
from modprobe.capture.trace import forward_kwargs
from modprobe.spans import ModalitySpans


@dataclass
class EagerReference:
    """Reference values at the query positions.

    Attributes:
        attention_mass: `batch layer head span` from ``output_attentions``.
        lens_logits: `batch layer vocab` from ``output_hidden_states``.
        final_logits: `batch vocab` the model's logits.
    """

    attention_mass: torch.Tensor
    lens_logits: torch.Tensor
    final_logits: torch.Tensor


def _language_outputs(out: Any) -> Any:
    """The output object holding the language model's attentions and hidden states."""
    if getattr(out, "attentions", None) is not None:
        return out
    inner = getattr(out, "language_model_outputs", None)  # InstructBLIP
    if inner is not None and getattr(inner, "attentions", None) is not None:
        return inner
    raise ValueError("the model returned no attentions; load it with attn_implementation='eager'")


def eager_reference(
    loaded: Any, batch: dict[str, Any], spans: ModalitySpans, positions: torch.Tensor
) -> EagerReference:
    """Attention mass, lens logits and final logits from eager outputs (differentiable).

    ``hidden_states[i + 1]`` is the output of decoder layer ``i``, except the last entry,
    which transformers has already passed through the final norm: the norm is applied to
    every other layer only.

    Args:
        loaded: A :class:`modprobe.LoadedModel` loaded with ``attn_implementation="eager"``.
        batch: The processor batch.
        spans: The batch's spans.
        positions: `batch` query positions.
    """
    module, adapter = loaded.module, loaded.adapter
    # the same forward arguments as the capture's (generation-style position ids)
    inputs = forward_kwargs(loaded, batch)
    out = module(**inputs, output_attentions=True, output_hidden_states=True)
    lm_out = _language_outputs(out)
    rows = torch.arange(positions.shape[0], device=positions.device)
    mass = torch.stack(
        [attention_rows_to_mass(a[rows, :, positions].float(), spans) for a in lm_out.attentions],
        dim=1,
    )
    hidden = [gather_positions(h, positions, dim=1) for h in lm_out.hidden_states[1:]]
    norm, head = adapter.norm(module), adapter.lm_head(module)
    lens = torch.stack([head(norm(h)) for h in hidden[:-1]] + [head(hidden[-1])], dim=1)
    final = gather_positions(out.logits, positions, dim=1)
    return EagerReference(attention_mass=mass, lens_logits=lens.float(), final_logits=final.float())


def sharpen_attention(loaded: Any, factor: float = 8.0) -> Any:
    """Scale every language-model attention's ``q_proj`` and ``k_proj`` weights in place.

    Tiny random models attend almost uniformly (q . k is ~0 at initialisation), so a wrong
    mask or a wrong key/head pairing would still give nearly right numbers. Applying the
    same factor to the SDPA and the eager copy of a model makes attention rows peaked
    (logits scale by ``factor ** 2``) and comparisons between them discriminating.

    Returns:
        ``loaded``, modified.
    """
    module, adapter = loaded.module, loaded.adapter
    with torch.no_grad():
        for i in range(adapter.num_layers(module)):
            attn = adapter.attention_module(module, i)
            attn.q_proj.weight.mul_(factor)
            attn.k_proj.weight.mul_(factor)
    return loaded
