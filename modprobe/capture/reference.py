"""A slow, independent reference for the capture: the model run exactly as a user runs it.

:func:`user_inputs` builds a prompt's inputs the way transformers' documentation does,
with the processor's own ``apply_chat_template(..., tokenize=True, return_dict=True)``,
and :func:`eager_reference` feeds the processor's FULL output to the model's own forward
(loaded with ``attn_implementation="eager"``) with ``output_attentions=True`` and
``output_hidden_states=True``; attention mass and lens logits come from the full
`batch head seq seq` matrices and all hidden states. Nothing of modprobe's encoding,
input filtering or forward arguments is used, so a capture that drops an input the model
needs (``token_type_ids``), tokenizes differently (a second BOS) or numbers positions
differently disagrees with it. It exists to test the capture, not for studies: it
materialises everything the capture avoids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modprobe.adapters.inputs import blank_pixel_values
from modprobe.capture.attention import attention_rows_to_mass, gather_positions
from modprobe.spans import ModalitySpans


@dataclass
class EagerReference:
    """Reference values at the query positions.

    Attributes:
        attention_mass: `batch layer head span` from ``output_attentions``; None when
            some layer attends to something other than the sequence (cross-attention).
        lens_logits: `batch layer vocab` from ``output_hidden_states``.
        final_logits: `batch vocab` the model's logits.
    """

    attention_mass: torch.Tensor | None
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


def user_inputs(loaded: Any, prompt: Any) -> dict[str, Any]:
    """One prompt's inputs as a user builds them with the processor alone (batch of one).

    With a chat template: ``processor.apply_chat_template(messages, tokenize=True,
    return_dict=True, add_generation_prompt=True, return_tensors="pt")``, the images in
    the messages. Without one (InstructBLIP): ``processor(images=..., text=...)``.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel` (its processor and adapter).
        prompt: The :class:`~modprobe.adapters.Prompt`.

    Returns:
        The processor's outputs for the prompt alone.
    """
    processor = loaded.processor
    if not loaded.adapter.chat_template:
        kwargs: dict[str, Any] = {"text": prompt.text, "return_tensors": "pt"}
        if prompt.images:
            kwargs["images"] = prompt.images
        inputs = dict(processor(**kwargs))
        if not prompt.images and loaded.adapter.requires_pixel_values:
            # The forward (InstructBLIP) cannot run without pixels: a user running a
            # text-only prompt passes a blank image, as modprobe's encode does.
            inputs["pixel_values"] = blank_pixel_values(processor, 1)
        return inputs
    out = processor.apply_chat_template(
        _user_messages(prompt), tokenize=True, return_dict=True, add_generation_prompt=True,
        return_tensors="pt")
    return dict(out)


def _user_messages(prompt: Any) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "image", "image": img} for img in prompt.images]
    content += [{"type": "video", "video": v.frames} for v in getattr(prompt, "videos", [])]
    content += [{"type": "audio", "audio": a.waveform} for a in getattr(prompt, "audio", [])]
    content.append({"type": "text", "text": prompt.text})
    return [{"role": "user", "content": content}]


def user_spans(loaded: Any, prompt: Any, inputs: dict[str, Any]) -> ModalitySpans:
    """Spans of :func:`user_inputs`' tokens, the context located as ``encode`` does.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        prompt: The prompt the inputs were built from.
        inputs: :func:`user_inputs`' output.

    Returns:
        The :class:`~modprobe.spans.ModalitySpans` of the one row.
    """
    from modprobe.adapters.context import locate_context

    processor = loaded.processor
    if loaded.adapter.chat_template:
        rendered = processor.apply_chat_template(_user_messages(prompt), tokenize=False,
                                                 add_generation_prompt=True)
    else:
        rendered = prompt.text
    input_ids = inputs["input_ids"]
    attention_mask = inputs.get("attention_mask", torch.ones_like(input_ids))
    context = locate_context(getattr(processor, "tokenizer", processor), [rendered],
                             [prompt.text], [prompt.context], input_ids, attention_mask)
    return loaded.adapter.spans(loaded.config, input_ids, attention_mask, context)


def eager_reference(
    loaded: Any, batch: dict[str, Any], spans: ModalitySpans, positions: torch.Tensor
) -> EagerReference:
    """Attention mass, lens logits and final logits from the model's own eager forward.

    ``batch`` goes to the forward whole, as the processor returned it (no filtering):
    ``model(**batch, output_attentions=True, output_hidden_states=True)``. A padded batch
    gets position ids as ``generate()`` numbers them (real tokens only), unless the model
    builds its own (Qwen-VL); a plain forward would number the padding too, which changes
    InstructBLIP's rows, whose processor puts its query tokens before the left padding.
    An unpadded prompt (:func:`user_reference`) gets none.
    ``hidden_states[i + 1]`` is the output of decoder layer ``i``, except the last entry,
    which transformers has already passed through the final norm: the norm is applied to
    every other layer only; the final-logit soft cap (Gemma 2) to all.

    Args:
        loaded: A :class:`modprobe.LoadedModel` loaded with ``attn_implementation="eager"``.
        batch: The processor's output (e.g. :func:`user_inputs`).
        spans: The batch's spans.
        positions: `batch` query positions.
    """
    from modprobe.adapters.context import CONTEXT_MASK
    from modprobe.capture.trace import generation_position_ids

    module, adapter = loaded.module, loaded.adapter
    # the processor's output: everything but modprobe's own context mask
    inputs = {k: v for k, v in batch.items() if k != CONTEXT_MASK}
    position_ids = generation_position_ids(module, inputs)
    if position_ids is not None and bool((inputs["attention_mask"] == 0).any()):
        inputs["position_ids"] = position_ids  # as generate() numbers a padded batch
    out = module(**inputs, output_attentions=True, output_hidden_states=True, use_cache=False)
    lm_out = _language_outputs(out)
    rows = torch.arange(positions.shape[0], device=positions.device)
    seq = batch["input_ids"].shape[1]
    mass = None
    if all(a is not None and a.shape[-1] == seq for a in lm_out.attentions):
        mass = torch.stack([attention_rows_to_mass(a[rows, :, positions].float(), spans)
                            for a in lm_out.attentions], dim=1)
    hidden = [gather_positions(h, positions, dim=1) for h in lm_out.hidden_states[1:]]
    norm, head = adapter.norm(module), adapter.lm_head(module)
    transform = adapter.logit_transform(module)

    def project(h: torch.Tensor) -> torch.Tensor:
        return transform(head(h))

    lens = torch.stack([project(norm(h)) for h in hidden[:-1]] + [project(hidden[-1])], dim=1)
    final = gather_positions(out.logits, positions, dim=1)
    return EagerReference(attention_mass=mass, lens_logits=lens.float(), final_logits=final.float())


def user_reference(
    loaded: Any, prompts: list[Any], back: int = 0
) -> tuple[EagerReference, list[torch.Tensor]]:
    """:func:`eager_reference` of each prompt run alone from :func:`user_inputs`, stacked.

    Each prompt is a batch of one, so nothing depends on padding or on how positions are
    numbered around it: what a user gets running that one prompt.

    Args:
        loaded: A :class:`modprobe.LoadedModel` loaded with ``attn_implementation="eager"``.
        prompts: The prompts.
        back: Query position counted back from the last prompt token (0: the answer
            position).

    Returns:
        The stacked reference (`batch ...` with one row per prompt) and each prompt's
        `seq` input ids as the processor made them.
    """
    refs, ids = [], []
    for prompt in prompts:
        inputs = user_inputs(loaded, prompt)
        input_ids = inputs["input_ids"]
        spans = user_spans(loaded, prompt, inputs)
        position = spans.answer_positions() - back
        refs.append(eager_reference(loaded, inputs, spans, position))
        ids.append(input_ids[0])
    stacked = EagerReference(**{
        name: None if any(getattr(r, name) is None for r in refs)
        else torch.cat([getattr(r, name) for r in refs])
        for name in ("attention_mass", "lens_logits", "final_logits")})
    return stacked, ids


def sharpen_attention(loaded: Any, factor: float = 8.0) -> Any:
    """Make every language-model self-attention peaked, in place (scores times ``factor**2``).

    Tiny random models attend almost uniformly (q . k is ~0 at initialisation), so a wrong
    mask or a wrong key/head pairing would still give nearly right numbers. Applying the
    same factor to the SDPA and the eager copy of a model makes attention rows peaked and
    comparisons between them discriminating. The attention's ``scaling`` (what it passes
    to the kernel) is multiplied by ``factor ** 2``; without one, the ``q_proj`` and
    ``k_proj`` weights by ``factor``. Scaling the projections would not work for
    families that normalise queries and keys after them (Gemma 3, Llama 4, Qwen3-VL).
    Layers without a self-attention module (Mllama's cross-attention layers) are left.

    Returns:
        ``loaded``, modified.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel` to modify.
        factor: How much sharper: attention scores are multiplied by ``factor ** 2``.
    """
    module, adapter = loaded.module, loaded.adapter
    with torch.no_grad():
        for layer in adapter.decoder_layers(module):
            attn = getattr(layer, adapter.attention, None)
            if attn is None:
                continue
            if isinstance(getattr(attn, "scaling", None), (int, float)):
                attn.scaling = float(attn.scaling) * factor**2
            else:
                attn.q_proj.weight.mul_(factor)
                attn.k_proj.weight.mul_(factor)
    return loaded
