"""The nnsight part: one trace that reads what the capture needs, layer by layer.

For every decoder layer, in execution order, the trace body reads

1. the inputs of the attention kernel call inside the layer's attention module
   (``envoy.source.attention_interface_1``: the ``attention_interface(self, query,
   key, value, attention_mask, scaling=..., ...)`` call every supported family makes),
   and turns them at once into `batch head span` mass (:mod:`.attention`);
2. the layer's output (the residual stream), keeping only the answer position
   (`batch hidden`).

Then it reads the model's final logits at the answer position. The model runs
unchanged (SDPA); nothing is written back. Under ``grad=True`` the same reads happen
with autograd on, so every returned float tensor is attached to the model's graph.

nnsight parses the body of a ``with model.trace(...)`` block from its source file, which
is why this lives in a module and not in a string or a notebook cell.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch

from modprobe.capture.attention import (
    answer_attention_scores,
    attention_rows_to_mass,
    attention_scores_to_log_mass,
    gather_positions,
    kernel_mask,
)
from modprobe.spans import ModalitySpans

_ATTENTION_CALL = re.compile(r"attention_interface_(\d+)$")


class CaptureTraceError(RuntimeError):
    """The model's forward does not have the structure the capture reads."""


@dataclass
class TraceOutput:
    """What one trace reads, before any vocabulary projection.

    Attributes:
        hidden: `batch layer hidden` output of each decoder layer at the query position
            (None when the lens was not requested).
        final_logits: `batch vocab` the model's own logits at the query position.
        attention_mass: `batch layer head span` (None when attention was not requested).
        attention_log_mass: `batch layer head span` log of the mass, computed in log space
            from the scores (only under autograd, for training losses; else None).
    """

    hidden: torch.Tensor | None
    final_logits: torch.Tensor
    attention_mass: torch.Tensor | None
    attention_log_mass: torch.Tensor | None = None


def attention_call_name(attention_envoy: Any) -> str:
    """Name of the attention-kernel call among a module's ``.source`` operations.

    ``attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(...)`` is
    ``attention_interface_0`` (the binding) and the call is the last
    ``attention_interface_N`` (``attention_interface_1`` in every supported family).

    Raises:
        CaptureTraceError: when the forward has no such call.
    """
    names = [n for n in attention_envoy.source.names if _ATTENTION_CALL.match(n)]
    if len(names) < 2:
        raise CaptureTraceError(
            f"the attention module {type(attention_envoy._module).__name__} does not call "
            "transformers' `attention_interface(self, query, key, value, mask, ...)`; modprobe "
            "reads the post-rotary query and keys from that call. Operations found: "
            f"{', '.join(attention_envoy.source.names)}"
        )
    return max(names, key=lambda n: int(_ATTENTION_CALL.match(n).group(1)))  # type: ignore[union-attr]


def _last_logits_only(
    module: torch.nn.Module, inputs: dict[str, Any], positions: torch.Tensor
) -> bool:
    """Whether the forward can compute logits for the last position only.

    Every query position is the last one under left padding, so ``logits_to_keep=1``
    saves a `batch seq vocab` tensor (600 MB per row for Qwen at 1,000 tokens).
    """
    seq = inputs["input_ids"].shape[1]
    if "logits_to_keep" in inputs or not bool((positions == seq - 1).all()):
        return False
    return "logits_to_keep" in inspect.signature(module.forward).parameters


def generation_position_ids(module: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor | None:
    """`batch seq` position ids as ``generate()`` builds them: the attention mask's cumsum.

    A plain forward numbers positions 0..seq-1 whatever the padding, while generation
    numbers real tokens only. The capture follows generation, so a row gives the same
    numbers batched and alone: under left padding RoPE is shift invariant anyway, but
    InstructBLIP's processor puts its query tokens *before* the padding, and there the two
    numberings change the distances between image and text. Models with multimodal
    rotary positions (Qwen-VL's ``get_rope_index``) already build them from the mask, so
    they get None (no override), as does a batch that brings its own ``position_ids``.

    Args:
        module: The torch model (its forward's parameters and inner model).
        inputs: The forward's keyword arguments.

    Returns:
        The position ids, or None where the forward's own are kept.
    """
    mask = inputs.get("attention_mask")
    if mask is None or "position_ids" in inputs:
        return None
    inner = getattr(module, "model", None)
    if hasattr(module, "get_rope_index") or hasattr(inner, "get_rope_index"):
        return None
    params = inspect.signature(module.forward).parameters.values()
    if not any(p.name == "position_ids" or p.kind is p.VAR_KEYWORD for p in params):
        return None
    position_ids = mask.long().cumsum(-1) - 1
    return position_ids.masked_fill(mask == 0, 0)


def forward_kwargs(loaded: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the capture's forward pass for a processor batch.

    The adapter's model inputs, no KV cache (one forward pass, nothing to keep), and
    generation-style position ids (:func:`generation_position_ids`).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        batch: A processor batch (``loaded.encode``'s).

    Returns:
        The keyword arguments for the model's forward (or its nnsight trace).
    """
    kwargs = dict(loaded.adapter.model_inputs(batch, loaded.module))
    kwargs.setdefault("use_cache", False)
    position_ids = generation_position_ids(loaded.module, kwargs)
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    return kwargs


def _layer_mass(
    attention_envoy: Any,
    call: str,
    positions: torch.Tensor,
    one_hot: torch.Tensor,
    attention_mask: torch.Tensor | None,
    chunk_size: int | None = None,
    with_log: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`batch head span` mass of one layer, read from its attention kernel call.

    Under autograd (``with_log``) also its log, computed from the scores.
    """
    args, kwargs = getattr(attention_envoy.source, call).inputs
    module = attention_envoy._module
    query, key = args[1], args[2]
    mask, window = kernel_mask(args, kwargs, module)
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dim() != 4):
        kind = (
            type(mask).__name__ if not isinstance(mask, torch.Tensor) else f"{mask.dim()}-D tensor"
        )
        raise CaptureTraceError(
            f"the attention kernel got a {kind} mask, not a 4-D one; modprobe recomputes "
            "attention rows from it. Load the model with attn_implementation='sdpa' (the "
            "default) or 'eager'."
        )
    scaling = kwargs.get("scaling")
    if scaling is None:
        scaling = getattr(module, "scaling", query.shape[-1] ** -0.5)
    softcap = kwargs.get("softcap")
    scores = answer_attention_scores(
        query,
        key,
        positions,
        float(scaling),
        mask,
        attention_mask=attention_mask,
        sliding_window=window,
        chunk_size=chunk_size,
        softcap=None if softcap is None else float(softcap),
    )
    mass = attention_rows_to_mass(torch.softmax(scores, dim=-1), one_hot)
    log_mass = attention_scores_to_log_mass(scores, one_hot) if with_log else None
    return mass, log_mass


def check_attention_capture(loaded: Any) -> None:
    """Refuse, with what to do, models whose attention the capture cannot recompute.

    Raises:
        CaptureTraceError: a decoder layer has no self-attention module (Mllama's
            cross-attention layers), or the attention soft-caps its logits under SDPA,
            which transformers refuses to run (Gemma-2-based PaliGemma 2).
    """
    adapter, module = loaded.adapter, loaded.module
    layers = adapter.decoder_layers(module)
    missing = [i for i, layer in enumerate(layers) if not hasattr(layer, adapter.attention)]
    if missing:
        kinds = sorted({type(layers[i]).__name__ for i in missing})
        raise CaptureTraceError(
            f"decoder layers {missing} of this {adapter.family} model ({', '.join(kinds)}) have "
            f"no {adapter.attention!r}: they do not run softmax attention over the prompt's "
            "tokens (they cross-attend to the image features, as in Mllama, or mix tokens "
            "with linear attention or convolutions), so attention mass over the prompt's "
            "spans is not defined there. Capture the logit lens only: "
            "capture(..., attention=False)."
        )
    check_softcap_kernel(loaded)


def check_softcap_kernel(loaded: Any) -> None:
    """Refuse SDPA for attention with soft-capped logits, naming the fix (eager)."""
    text = loaded.adapter.language_config(loaded.module.config)
    cap = getattr(text, "attn_logit_softcapping", None)
    impl = getattr(loaded.module.config, "_attn_implementation", None)
    if cap is not None and impl not in ("eager", None):
        raise CaptureTraceError(
            f"this model soft-caps its attention logits (attn_logit_softcapping={cap}), which "
            f"the {impl!r} attention kernel cannot compute (transformers refuses to run it). "
            "Load it with eager attention: modprobe.load(name, attn_implementation='eager')."
        )


def chunk_sizes(loaded: Any) -> list[int | None]:
    """Attention chunk of each decoder layer (Llama 4 ``chunked_attention`` layers), or None."""
    text = loaded.adapter.language_config(loaded.module.config)
    types = getattr(text, "layer_types", None) or []
    size = getattr(text, "attention_chunk_size", None)
    n_layers = loaded.adapter.num_layers(loaded.module)
    return [size if i < len(types) and types[i] == "chunked_attention" else None
            for i in range(n_layers)]


def skipped_layers(loaded: Any, inputs: dict[str, Any]) -> set[int]:
    """Decoder layers the forward will skip: cross-attention layers without an image.

    Mllama runs its cross-attention layers only when there are image features to attend
    to; in a text-only batch the residual stream passes them unchanged, so their lens is
    the previous layer's.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        inputs: The forward's inputs (pixel values or not).

    Returns:
        Indices of the layers skipped (empty when the batch has images).
    """
    if inputs.get("pixel_values") is not None or inputs.get("cross_attention_states") is not None:
        return set()
    adapter = loaded.adapter
    layers = adapter.decoder_layers(loaded.module)
    return {i for i, layer in enumerate(layers)
            if i > 0 and not hasattr(layer, adapter.attention) and hasattr(layer, "cross_attn")}


def run_trace(
    loaded: Any,
    inputs: dict[str, Any],
    spans: ModalitySpans,
    positions: torch.Tensor,
    *,
    lens: bool = True,
    attention: bool = True,
) -> TraceOutput:
    """Run one nnsight trace over a batch and read hidden states, mass and logits.

    Grad mode is the caller's: run under ``torch.no_grad()`` for analysis, under
    ``torch.enable_grad()`` for a training loss.

    Args:
        loaded: A :class:`modprobe.loading.LoadedModel`.
        inputs: The model's forward kwargs (a processor batch).
        spans: The batch's modality spans.
        positions: `batch` query position of each row.
        lens: Read each layer's residual stream at ``positions``.
        attention: Recompute each layer's attention rows at ``positions``.
    """
    model, adapter = loaded.model, loaded.adapter
    module = loaded.module
    n_layers = adapter.num_layers(module)
    if attention:
        check_attention_capture(loaded)
    else:
        check_softcap_kernel(loaded)
    chunks = chunk_sizes(loaded)
    attn_envoys = [adapter.attention_module(model, i) for i in range(n_layers)] if attention else []
    calls = [attention_call_name(e) for e in attn_envoys]
    layer_envoys = adapter.decoder_layers(model)
    device = loaded.device
    positions = positions.to(device)
    one_hot = spans.one_hot(torch.float32).to(device)
    attention_mask = inputs.get("attention_mask")
    kwargs = forward_kwargs(loaded, inputs)
    if _last_logits_only(module, kwargs, positions):
        kwargs["logits_to_keep"] = 1
        logit_positions = torch.zeros_like(positions)
    else:
        logit_positions = positions

    skipped = skipped_layers(loaded, kwargs)
    masses: list[torch.Tensor] = []
    log_masses: list[torch.Tensor] = []
    with_log = torch.is_grad_enabled()  # a training loss wants the log-masses too
    hidden: list[torch.Tensor] = []
    remote = getattr(loaded, "remote", False)
    if remote:  # NDIF, or nnsight's local simulation of it (modprobe.load(remote=))
        kwargs["remote"] = remote
    with model.trace(**kwargs):
        for i in range(n_layers):
            if attention:
                mass, log_mass = _layer_mass(attn_envoys[i], calls[i], positions, one_hot,
                                             attention_mask, chunks[i], with_log)
                # .to(device): layers may sit on different GPUs (device_map="auto")
                masses.append(mass.to(device).save())
                if log_mass is not None:
                    log_masses.append(log_mass.to(device).save())
            if lens and i in skipped:
                hidden.append(hidden[-1])  # the layer does not run: the residual passes
            elif lens:
                out = layer_envoys[i].output
                # transformers 5 decoder layers return a tensor; older ones a tuple.
                out = out[0] if isinstance(out, tuple) else out
                hidden.append(gather_positions(out, positions, dim=1).to(device).save())
        final = gather_positions(model.output.logits, logit_positions, dim=1).save()
    return TraceOutput(
        hidden=torch.stack(hidden, dim=1) if lens else None,
        final_logits=final,
        attention_mass=torch.stack(masses, dim=1) if attention else None,
        attention_log_mass=torch.stack(log_masses, dim=1) if log_masses else None,
    )
