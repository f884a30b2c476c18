"""The adapter contract: a declarative description of one model family.

An adapter says where a family keeps its parts (decoder layers, final norm, unembedding,
attention module), which config fields hold its modality token ids, and how to turn a
:class:`Prompt` into model inputs with the processor's chat template. Everything else in
modprobe (capture, analyses, fine-tuning) talks to models only through an adapter.

Adding a family is one new file with one :class:`Adapter` instance (see
``docs/models.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from modprobe.adapters.context import CONTEXT_MASK, locate_context
from modprobe.adapters.logits import LogitTransform, find_logit_transform
from modprobe.adapters.media import (
    Audio,
    Video,
    as_audio,
    as_list,
    as_video,
    check_media_placeholders,
    forward_flags,
    media_kwargs,
)
from modprobe.errors import ModprobeError
from modprobe.spans import ModalitySpans

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

#: The three conditions of a modality-conflict study (docs/science.md section 1).
Condition = Literal["vision", "text", "multi"]
CONDITIONS: tuple[Condition, ...] = ("vision", "text", "multi")


class AdapterError(ModprobeError, ValueError):
    """A model cannot be adapted, or an input does not fit the model's family."""


@dataclass
class Prompt:
    """One model input: optional images, videos, audio and textual context, and a question.

    The three study conditions are ``Prompt(question, image=img)`` (vision-only),
    ``Prompt(question, context=text)`` (text-only) and both (conflict / multi).
    Audio-visual prompts add ``videos`` (each with its soundtrack, if any) and ``audio``
    (clips heard on their own); the chat message holds images, videos, audio, then text.

    Attributes:
        question: The question, e.g. ``"What color is the circle? Please use one word..."``.
        context: Textual description placed between the media and the question.
        images: Images shown before the text (most studies use exactly one).
        videos: Videos (:class:`~modprobe.adapters.media.Video`, ``(frames, fps)`` or a
            file path); a video's soundtrack goes in with it (interleaved by Qwen2.5-Omni).
        audio: Audio clips (:class:`~modprobe.adapters.media.Audio`,
            ``(waveform, sampling_rate)`` or a file path).
    """

    question: str = ""
    context: str | None = None
    images: list[Image] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    audio: list[Audio] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Checked here, where the prompt is made, not deep inside a processor call.
        if not isinstance(self.question, str) or not self.question.strip():
            got = "nothing" if self.question == "" else f"{self.question!r}"
            raise AdapterError(f"Prompt needs a question (a non-empty string), got {got}: "
                               "Prompt('What color is the circle?', images=[img])")
        if self.context is not None and not isinstance(self.context, str):
            raise AdapterError(f"Prompt context must be a string or None, got "
                               f"{type(self.context).__name__}")
        from PIL.Image import Image as PILImage

        images = self.images
        if images is None:
            images = []
        elif isinstance(images, PILImage):
            raise AdapterError("Prompt images must be a list of PIL images, got one image "
                               "without a list: write images=[img]")
        elif not isinstance(images, (list, tuple)):
            raise AdapterError(f"Prompt images must be a list of PIL images, got a "
                               f"{type(images).__name__}: write images=[img] (or [] for none)")

        for i, image in enumerate(images):
            if not isinstance(image, PILImage):
                raise AdapterError(f"Prompt images[{i}] is a {type(image).__name__}, not a PIL "
                                   "image; open files with PIL.Image.open(path)")
        self.images = list(images)
        self.videos = [as_video(v) for v in as_list(self.videos, "videos")]
        self.audio = [as_audio(a) for a in as_list(self.audio, "audio")]

    @property
    def modalities(self) -> frozenset[str]:
        """The modalities this prompt holds (``image``, ``video``, ``audio``, ``context``)."""
        held = {"image": self.images, "video": self.videos, "context": self.context,
                "audio": self.audio or [v for v in self.videos if v.audio is not None]}
        return frozenset(name for name, value in held.items() if value)

    @classmethod
    def for_condition(
        cls, condition: Condition | set[str] | frozenset[str], question: str,
        context: str | None, image: Image | None, videos: list[Any] | None = None,
        audio: list[Any] | None = None,
    ) -> Prompt:
        """Build the prompt of one study condition from an item's parts.

        Args:
            condition: ``"vision"``, ``"text"``, ``"multi"`` or a set of modalities
                (``{"video", "audio"}``, see :func:`~modprobe.adapters.conditions.condition_modalities`):
                the parts the prompt holds.
            question, context, image, videos, audio: The item's parts.

        Raises:
            ValueError: an unknown condition, or a part the condition needs is missing.
        """
        from modprobe.adapters.conditions import condition_modalities

        wanted = condition_modalities(condition)
        given = {"image": image, "context": context, "video": videos, "audio": audio}
        missing = [m for m in ("image", "video", "audio", "context") if m in wanted
                   and not given[m]]
        if missing:
            named = {"image": "an image", "context": "a textual context", "video": "video",
                     "audio": "audio"}
            raise ValueError(f"the {condition!r} condition needs "
                             f"{' and '.join(named[m] for m in missing)}")
        return cls(
            question=question,
            context=context if "context" in wanted else None,
            images=[image] if "image" in wanted else [],
            videos=list(videos or []) if "video" in wanted else [],
            audio=list(audio or []) if "audio" in wanted else [],
        )

    @property
    def text(self) -> str:
        """The text part: context (if any) then question, on separate lines."""
        return f"{self.context}\n{self.question}" if self.context else self.question


def get_submodule(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (``"model.language_model.layers"``) from ``root``.

    Works on a torch module and on an nnsight envoy alike.
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
        return len(get_submodule(_unwrap(model), self.layers))

    def norm(self, model: Any) -> Any:
        """The final norm applied to the residual stream before the unembedding."""
        return get_submodule(model, self.final_norm)

    def lm_head(self, model: Any) -> Any:
        """The unembedding (hidden state -> vocabulary logits)."""
        return get_submodule(model, self.unembed)

    def attention_module(self, model: Any, layer: int) -> Any:
        """The attention module of decoder layer ``layer``."""
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
        model = _unwrap(model)
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
        """The prompt string the processor tokenizes, placeholders included."""
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
            if self.chat_template and _template_writes_bos(tokenizer, texts):
                # What the processor's own apply_chat_template(tokenize=True) does: a
                # template that writes BOS itself gets no second one from tokenization.
                kwargs["add_special_tokens"] = False
            if any(p.images for p in prompts):
                kwargs["images"] = self.batch_images(prompts)
            kwargs.update(media_kwargs(processor, prompts))
            batch = processor(**kwargs)
        finally:
            tokenizer.padding_side = old_side
        out = _right_pad_qformer(dict(batch))
        out.update(forward_flags(prompts))
        out[CONTEXT_MASK] = locate_context(
            getattr(processor, "tokenizer", processor), texts, [p.text for p in prompts],
            [p.context for p in prompts], out["input_ids"], out["attention_mask"])
        if not any(p.images for p in prompts) and self.requires_pixel_values:
            out["pixel_values"] = _blank_pixel_values(processor, len(prompts))
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


def loss_only_parameters(model: Any) -> frozenset[str]:
    """Names of forward arguments that only feed the loss (``labels``, ``shift_labels``...).

    They are the parameters of the model's loss function other than the logits, read
    from the function transformers picks for the model (``model.loss_function``).
    """
    import inspect

    from transformers.loss.loss_utils import LOSS_MAPPING

    module = _unwrap(model)
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
    """
    import inspect

    module = _unwrap(model)
    params = inspect.signature(module.forward).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    drop = loss_only_parameters(module)
    return {k: v for k, v in batch.items() if k in named and k not in drop}


def _template_writes_bos(tokenizer: Any, texts: list[str]) -> bool:
    """Whether every rendered prompt already starts with the tokenizer's BOS token."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and all(t.startswith(bos) for t in texts)


def _right_pad_qformer(batch: dict[str, Any]) -> dict[str, Any]:
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


def _unwrap(model: Any) -> Any:
    """The torch module behind an nnsight wrapper (or the module itself)."""
    return getattr(model, "_module", model)


def _blank_pixel_values(processor: Any, batch_size: int) -> torch.Tensor:
    """All-zero pixel values shaped as the processor's for ``batch_size`` images."""
    from PIL import Image

    blank = Image.new("RGB", (32, 32))
    pixels = processor.image_processor([blank] * batch_size, return_tensors="pt")["pixel_values"]
    return torch.zeros_like(pixels)
