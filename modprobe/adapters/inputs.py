"""From a processor batch to the model's forward: submodules, inputs, padding fixes.

The helpers :class:`~modprobe.adapters.base.Adapter` uses to reach a model's parts
(:func:`get_submodule`, :func:`unwrap`) and to turn a processor's batch into what the
forward takes (:func:`forward_inputs`), with the fixes some processors need
(:func:`right_pad_qformer`, :func:`blank_pixel_values`).
"""

from __future__ import annotations

from typing import Any

import torch

from modprobe.adapters.prompt import AdapterError


def get_submodule(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (``"model.language_model.layers"``) from ``root``.

    Works on a torch module and on an nnsight envoy alike.

    Args:
        root: A torch module or an nnsight envoy.
        path: Attribute names joined by dots.

    Returns:
        The submodule (an envoy when ``root`` is one).

    Raises:
        AdapterError: a name on the path does not exist (the adapter does not fit the model).
    """
    obj = root
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AdapterError(
                f"{type(root).__name__} has no submodule {path!r} (stopped at {part!r}); "
                "the adapter's paths do not match this model"
            ) from None
    return obj


def loss_only_parameters(model: Any) -> frozenset[str]:
    """Names of forward arguments that only feed the loss (``labels``, ``shift_labels``...).

    They are the parameters of the model's loss function other than the logits, read
    from the function transformers picks for the model (``model.loss_function``).
    """
    import inspect

    from transformers.loss.loss_utils import LOSS_MAPPING

    module = unwrap(model)
    loss = getattr(module, "_loss_function", None)
    if loss is None:
        loss = LOSS_MAPPING.get(getattr(module, "loss_type", None) or "", LOSS_MAPPING["ForCausalLM"])
    params = inspect.signature(loss).parameters.values()
    return frozenset(p.name for p in params if p.name != "logits"
                     and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def forward_inputs(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The processor outputs that the model's ``forward`` accepts, minus loss-only ones.

    The rule, read off the forward's signature: an output is passed on when the forward
    names it as a parameter (``token_type_ids`` for Gemma3/PaliGemma's bidirectional image
    attention, ``mm_token_type_ids`` for Qwen-VL's rotary positions, ``aspect_ratio_ids``
    for Mllama, ...) and it is not an argument of the model's loss function
    (:func:`loss_only_parameters`: ``labels``, which PaliGemma's processor returns).
    Outputs the forward does not name would land in its ``**kwargs`` (read by attention
    kernels), so they are left out.

    Args:
        model: The model (torch module or nnsight wrapper).
        batch: A processor batch.

    Returns:
        The entries of ``batch`` to pass to the forward.
    """
    import inspect

    module = unwrap(model)
    params = inspect.signature(module.forward).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    drop = loss_only_parameters(module)
    return {k: v for k, v in batch.items() if k in named and k not in drop}


def template_writes_bos(tokenizer: Any, texts: list[str]) -> bool:
    """Whether every rendered prompt already starts with the tokenizer's BOS token.

    Args:
        tokenizer: The processor's tokenizer.
        texts: The rendered prompts.

    Returns:
        False when the tokenizer has no BOS token.
    """
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and all(t.startswith(bos) for t in texts)


def right_pad_qformer(batch: dict[str, Any]) -> dict[str, Any]:
    """Move InstructBLIP's Q-Former text padding to the right.

    The processor pads the Q-Former's text with the language tokenizer's padding side
    (left here), but the Q-Former is BERT-like with absolute position embeddings: left
    padding shifts its text positions and changes the image features of every padded row
    (a row batched would not give what it gives alone). Right padding leaves them intact.
    """
    mask = batch.get("qformer_attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        return batch
    ids = batch["qformer_input_ids"]
    # stable sort puts real tokens (key 0) first, in order, and padding (key 1) after
    order = torch.sort((mask == 0).long(), dim=1, stable=True).indices
    batch["qformer_input_ids"] = ids.gather(1, order)
    batch["qformer_attention_mask"] = mask.gather(1, order)
    return batch


def unwrap(model: Any) -> Any:
    """The torch module behind an nnsight wrapper (or the module itself)."""
    return getattr(model, "_module", model)


def blank_pixel_values(processor: Any, batch_size: int) -> torch.Tensor:
    """All-zero pixel values shaped as the processor's for ``batch_size`` images.

    Args:
        processor: The model's processor (its image processor).
        batch_size: Rows of the batch.

    Returns:
        Zeros shaped as the image processor's ``pixel_values`` for that many images.
    """
    from PIL import Image

    blank = Image.new("RGB", (32, 32))
    pixels = processor.image_processor([blank] * batch_size, return_tensors="pt")["pixel_values"]
    return torch.zeros_like(pixels)
