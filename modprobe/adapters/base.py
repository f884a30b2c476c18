"""The adapter contract: a declarative description of one model family.

An adapter says where a family keeps its parts (decoder layers, final norm, unembedding,
attention module), which config fields hold its modality token ids, and how to turn a
:class:`Prompt` into model inputs with the processor's chat template. Everything else in
modprobe (capture, analyses, fine-tuning) talks to models only through an adapter.

The prompt and conditions live in :mod:`~modprobe.adapters.prompt`, the helpers
from a processor batch to the forward in :mod:`~modprobe.adapters.inputs`. Adding a
family is one new file with one :class:`Adapter` instance (see
``docs/models.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modprobe.adapters.context import CONTEXT_MASK, locate_context
from modprobe.adapters.inputs import (
    blank_pixel_values,
    forward_inputs,
    get_submodule,
    loss_only_parameters,
    right_pad_qformer,
    template_writes_bos,
    unwrap,
)
from modprobe.adapters.logits import LogitTransform, find_logit_transform
from modprobe.adapters.media import check_media_placeholders, forward_flags, media_kwargs
from modprobe.adapters.prompt import CONDITIONS, AdapterError, Condition, Prompt
from modprobe.spans import ModalitySpans

__all__ = [
    "CONDITIONS", "Adapter", "AdapterError", "Condition", "Prompt", "forward_inputs",
    "get_submodule", "loss_only_parameters",
]


@dataclass(frozen=True)
class Adapter:
    """Where a model family keeps its parts and how its inputs are laid out.

    Attributes:
        family: Short name, e.g. ``"llava"``.
        model_types: ``config.model_type`` values this adapter handles.
        layers: Dotted path from the model to its list of decoder layers.
        final_norm: Dotted path to the final norm applied before the unembedding.
        unembed: Dotted path to the unembedding (``lm_head``).
        attention: Attribute name of the attention module inside a decoder layer.
        text_config: Attribute of the config holding the language model's config.
        image_token: Config attribute holding the image placeholder token id.
        video_token: Config attribute holding the video placeholder token id, if any.
        audio_token: Config attribute holding the audio placeholder token id, if any.
        chat_template: Whether prompts are built with the processor's chat template
            (``False``: the processor inserts the image tokens itself, as InstructBLIP's does).
        mixed_batches: Whether one batch may mix prompts with and without images.
        extra_inputs: Processor outputs that the forward pass needs beyond ``input_ids``,
            ``attention_mask`` and pixel values (Qwen-VL's ``mm_token_type_ids``).
        requires_pixel_values: Whether the forward pass fails without ``pixel_values``
            (InstructBLIP). A batch without images then gets all-zero pixel values; with no
            image placeholder in ``input_ids`` the vision output is scattered nowhere, so
            the language model still sees only text.
    """

    family: str
    model_types: tuple[str, ...]
    layers: str = "model.language_model.layers"
    final_norm: str = "model.language_model.norm"
    unembed: str = "lm_head"
    attention: str = "self_attn"
    text_config: str = "text_config"
    image_token: str = "image_token_id"
    video_token: str | None = None
    audio_token: str | None = None
    chat_template: bool = True
    mixed_batches: bool = True
    extra_inputs: tuple[str, ...] = ()
    requires_pixel_values: bool = False

    # ----------------------------------------------------------------- model parts
    def decoder_layers(self, model: Any) -> Any:
        """The decoder layers (a ModuleList, or its envoy when given an nnsight model)."""
        return get_submodule(model, self.layers)

    def num_layers(self, model: Any) -> int:
        """Number of decoder layers of the language model."""
        return len(get_submodule(unwrap(model), self.layers))

    def norm(self, model: Any) -> Any:
        """The final norm applied to the residual stream before the unembedding."""
        return get_submodule(model, self.final_norm)

    def lm_head(self, model: Any) -> Any:
        """The unembedding (hidden state -> vocabulary logits)."""
        return get_submodule(model, self.unembed)

    def attention_module(self, model: Any, layer: int) -> Any:
        """The attention module of decoder layer ``layer``.

        Args:
            model: The model (torch module or nnsight wrapper).
            layer: The decoder layer's index.

        Returns:
            The layer's attention module (an envoy when given an nnsight model).
        """
        return getattr(self.decoder_layers(model)[layer], self.attention)

    def language_config(self, config: Any) -> Any:
        """The language model's config (heads, kv heads, head_dim, layer types...)."""
        return getattr(config, self.text_config, None) or config

    def logit_transform(self, model: Any) -> LogitTransform:
        """What the model's forward does to the unembedding's output (see :mod:`.logits`).

        Cohere's ``logit_scale``, Granite's ``logits_scaling``, Gemma 2's final soft cap:
        the logit lens applies the same steps, so that the last layer's lens is the
        model's output.
        """
        model = unwrap(model)
        owner = self.unembed.rsplit(".", 1)[0] if "." in self.unembed else None
        head_owner = get_submodule(model, owner) if owner else model
        return find_logit_transform(model, self.language_config(model.config), head_owner)

    # ----------------------------------------------------------------- tokens
    def token_ids(self, config: Any) -> dict[str, int]:
        """Placeholder token id of each non-text modality the config defines."""
        out: dict[str, int] = {}
        for name, attr in (("image", self.image_token), ("video", self.video_token),
                           ("audio", self.audio_token)):
            if attr is None:
                continue
            value = getattr(config, attr, None)
            if value is not None:
                out[name] = int(value)
        if "image" not in out:
            raise AdapterError(
                f"the {self.family} config has no {self.image_token!r}: modprobe cannot tell "
                "image tokens from text tokens in this model"
            )
        return out

    def spans(self, config: Any, input_ids: torch.Tensor,
              attention_mask: torch.Tensor | None = None,
              context_mask: torch.Tensor | None = None) -> ModalitySpans:
        """Span of every token of a (padded) batch.

        A token is image/video/audio when it equals that modality's placeholder id and is
        attended; context where ``context_mask`` (from :meth:`encode`) says so; padding is
        where ``attention_mask`` is 0; everything else is text (question, chat template,
        special tokens, the Qwen-VL ``<|vision_start|>``/``<|vision_end|>`` wrappers).
        Without ``context_mask`` the context span is empty and a description counts as text.

        Args:
            config: The model's config (its placeholder token ids).
            input_ids: `batch seq` token ids.
            attention_mask: `batch seq`, 1 for real tokens, 0 for padding (None: no padding).
            context_mask: `batch seq` booleans marking context tokens (``encode``'s).

        Returns:
            The :class:`~modprobe.spans.ModalitySpans` of the batch.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        masks = {name: input_ids == tid for name, tid in self.token_ids(config).items()}
        if context_mask is not None:
            masks["context"] = context_mask.to(input_ids.device)
        return ModalitySpans.from_masks(attention_mask, **masks)

    # ----------------------------------------------------------------- prompts
    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """Chat messages (transformers' multimodal format) for one prompt."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in prompt.images]
        content += [{"type": "video"} for _ in prompt.videos]
        content += [{"type": "audio"} for _ in prompt.audio]
        content.append({"type": "text", "text": prompt.text})
        return [{"role": "user", "content": content}]

    def prompt_text(self, processor: Any, prompt: Prompt) -> str:
        """The prompt string the processor tokenizes, placeholders included.

        Args:
            processor: The model's processor (its chat template).
            prompt: The prompt.

        Returns:
            The chat template rendered with the generation prompt (the prompt's text itself
            for families without a chat template).

        Raises:
            AdapterError: the family uses a chat template and the processor has none.
        """
        if not self.chat_template:
            return prompt.text
        template = getattr(processor, "chat_template", None) or getattr(
            getattr(processor, "tokenizer", None), "chat_template", None)
        if not template:
            raise AdapterError(
                f"the {self.family} processor has no chat template; save one with the "
                "processor (processor.chat_template = ...) or pass a processor that has it"
            )
        return processor.apply_chat_template(
            self.messages(prompt), add_generation_prompt=True, tokenize=False)

    def encode(self, processor: Any, prompts: list[Prompt], padding_side: str = "left",
               device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Tokenize a batch of prompts into model inputs (padded, with pixel values).

        The batch also holds ``context_mask`` (`batch seq` booleans marking each prompt's
        context tokens, see :mod:`modprobe.adapters.context`), which :meth:`spans` reads
        and :meth:`model_inputs` leaves out: pass ``model_inputs(batch)`` to the model.

        Args:
            processor: The model's processor.
            prompts: The prompts, one row each.
            padding_side: ``"left"`` (the answer position is the last one of every row) or
                ``"right"``.
            device: Move every tensor there (None: leave them on the CPU).

        Returns:
            The processor's outputs (``input_ids``, ``attention_mask``, pixel values, media
            inputs) plus ``context_mask`` and the forward's media flags.

        Raises:
            AdapterError: if the batch mixes prompts with and without images where the family
                cannot, or a prompt's text holds a different number of image placeholders
                than it has images.
        """
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        with_images = [bool(p.images) for p in prompts]
        if not self.mixed_batches and len(set(with_images)) > 1:
            raise AdapterError(
                f"{self.family} cannot batch prompts with and without images together; "
                "encode each condition in its own batch"
            )
        texts = [self.prompt_text(processor, p) for p in prompts]
        self._check_placeholders(processor, prompts, texts)
        tokenizer = getattr(processor, "tokenizer", processor)
        old_side = tokenizer.padding_side
        tokenizer.padding_side = padding_side
        try:
            kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
            if self.chat_template and template_writes_bos(tokenizer, texts):
                # What the processor's own apply_chat_template(tokenize=True) does: a
                # template that writes BOS itself gets no second one from tokenization.
                kwargs["add_special_tokens"] = False
            if any(p.images for p in prompts):
                kwargs["images"] = self.batch_images(prompts)
            kwargs.update(media_kwargs(processor, prompts))
            batch = processor(**kwargs)
        finally:
            tokenizer.padding_side = old_side
        out = right_pad_qformer(dict(batch))
        out.update(forward_flags(prompts))
        out[CONTEXT_MASK] = locate_context(
            getattr(processor, "tokenizer", processor), texts, [p.text for p in prompts],
            [p.context for p in prompts], out["input_ids"], out["attention_mask"])
        if not any(p.images for p in prompts) and self.requires_pixel_values:
            out["pixel_values"] = blank_pixel_values(processor, len(prompts))
        if device is not None:
            out = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in out.items()}
        return out

    def batch_images(self, prompts: list[Prompt]) -> list[Any]:
        """The ``images`` argument of the processor: one list of images per row.

        Processors of several families (Gemma3, Mllama, SmolVLM, ...) read a flat list as
        the images of ONE sample, so images go per row, as ``apply_chat_template`` passes
        them. Without a chat template (InstructBLIP: at most one image per row) the list
        is flat, one image per row.
        """
        if not self.chat_template:
            return [img for p in prompts for img in p.images]
        return [list(p.images) for p in prompts]

    def _check_placeholders(self, processor: Any, prompts: list[Prompt], texts: list[str]) -> None:
        """Fail clearly when a prompt's images and image placeholders do not pair up.

        With a chat template, the template writes one placeholder per image, so a mismatch
        means the question or context holds placeholders of its own. Without one
        (InstructBLIP), the processor inserts the query tokens for the single image itself.
        """
        image_token = getattr(processor, "image_token", None)
        image_token = getattr(image_token, "content", image_token)  # AddedToken -> str
        check_media_placeholders(processor, prompts, texts)
        for i, (prompt, text) in enumerate(zip(prompts, texts)):
            found = text.count(image_token) if image_token else 0
            if self.chat_template and image_token and found != len(prompt.images):
                raise AdapterError(
                    f"prompt {i} has {len(prompt.images)} image(s) but its text holds {found} "
                    f"image placeholder(s) {image_token!r}; give one image per placeholder "
                    "(and do not write placeholders into the question or context yourself)"
                )
            if not self.chat_template and (len(prompt.images) > 1 or found):
                raise AdapterError(
                    f"prompt {i} has {len(prompt.images)} image(s) and {found} image "
                    f"placeholder(s) in its text; {self.family} takes at most one image per "
                    "prompt and inserts its image tokens itself (write no placeholders)"
                )

    def model_inputs(self, batch: dict[str, Any], model: Any = None) -> dict[str, Any]:
        """The processor outputs the model's forward takes (see :func:`forward_inputs`).

        ``context_mask`` (modprobe's, not the processor's) is never one of them.

        Args:
            batch: A processor batch (``encode``'s output).
            model: The model (torch module or nnsight wrapper). Without it, the batch is
                returned minus ``token_type_ids`` unless listed in ``extra_inputs``
                (the behaviour of modprobe < 0.2; pass the model).
        """
        if model is None:
            return {k: v for k, v in batch.items() if k != CONTEXT_MASK
                    and (k != "token_type_ids" or k in self.extra_inputs)}
        return forward_inputs(model, batch)
