"""Masked adversarial embeddings (arXiv 2505.19616, section 4.1), done exactly.

The perturbation ``delta`` (`batch seq hidden`, float32) is added to the *language
model's* input embeddings, after the image (video, audio) features have been merged into
them, and only at the positions of the task-irrelevant modality:

    e'[b, i] = e[b, i] + delta[b, i]   where mask[b, i]
    e'[b, i] = e[b, i]                 elsewhere (bit for bit)

It is found by projected raw-gradient ascent on the answer loss ``L``, from a small
random start (no sign, as the paper has it):

    delta_0 = Proj(N(0, (init_scale * eps)^2) * mask)
    delta_{k+1} = Proj(delta_k + step_size * mask * dL/d delta_k),   k = 0..K-1

with ``Proj`` the projection to the eps ball (``"linf"``: element-wise clamp to
``[-eps, eps]``; ``"l2"``: rescale each row's perturbation to norm at most ``eps``).
For the ascent ``L`` sums the rows' losses, so a row's step does not depend on the batch
size. Paper defaults: ``step_size=0.1``, ``eps=1e-3``, ``K=2``.

*Where* the embeddings are perturbed: a forward pre-hook on the decoder stack (the module
holding the adapter's ``layers``) rewrites the ``inputs_embeds`` it receives. The model's
own forward still runs from ``input_ids``: it merges the vision features, builds the
attention mask and the position ids (Qwen-VL's 3-D rotary positions from
``get_rope_index``, the generation-style ids of :func:`forward_kwargs` elsewhere) exactly
as for the clean prompt, and passes those positions explicitly to the decoder stack, and
anything after the stack (final norm, ``lm_head``, a family's logit soft-capping) runs
unchanged. That makes it exact on every family, at the price of running the vision tower
again in each ascent step.

Precision: ``delta`` is kept and updated in float32, and ``e + delta`` is formed in
float32; a model whose decoder runs in bfloat16 weights must round the sum back to
bfloat16, where a 1e-3 change of an O(1) embedding mostly vanishes (a warning says so).
Keep the weights in float32 and train under bf16 autocast to keep the perturbation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modprobe.adapters.base import get_submodule
from modprobe.finetune.answer import answer_logits, answer_loss
from modprobe.finetune.losses import CONTENT_SPANS, span_index
from modprobe.spans import ModalitySpans

#: Norms of the perturbation ball.
ADV_NORMS: tuple[str, ...] = ("linf", "l2")


class AdversarialError(RuntimeError):
    """The model's decoder stack cannot be perturbed as the method needs."""


@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of the masked adversarial perturbation.

    Attributes:
        steps: Ascent steps ``K`` (0: the random start only).
        step_size: Step ``alpha`` on the raw gradient.
        eps: Radius of the ball.
        norm: ``"linf"`` (element-wise clamp) or ``"l2"`` (per-row norm).
        init_scale: Standard deviation of the Gaussian start, as a fraction of ``eps``
            (for ``"l2"``: the start's norm as a fraction of ``eps``); 0 starts at zero.
    """

    steps: int = 2
    step_size: float = 0.1
    eps: float = 1e-3
    norm: str = "linf"
    init_scale: float = 0.5

    def __post_init__(self) -> None:
        """Refuse an unknown norm, negative steps or a radius that is not positive and finite."""
        if self.norm not in ADV_NORMS:
            raise ValueError(f"unknown adversarial norm {self.norm!r}; use one of {', '.join(ADV_NORMS)}")
        if self.steps < 0:
            raise ValueError(f"adversarial steps (--adv-steps) must be >= 0, got {self.steps}")
        if not 0 < self.eps < math.inf:
            raise ValueError(f"adversarial eps (--adv-eps) must be a finite number > 0, got {self.eps}")
        if not (0 <= self.step_size < math.inf and 0 <= self.init_scale < math.inf):
            raise ValueError(f"adversarial step_size (--adv-step-size) and init_scale must be "
                             f"finite numbers >= 0, got {self.step_size} and {self.init_scale}")


def irrelevant_spans(relevant: str) -> tuple[str, ...]:
    """The spans whose tokens are perturbed when ``relevant`` is the task's modality.

    Every content span (image, video, audio, context) but the relevant one. Chat template,
    question and other text are never perturbed. ``relevant="text"`` (the description
    when no separate context span exists) perturbs the non-text modalities.
    """
    span_index(relevant)  # validates the name
    drop = {relevant, "context"} if relevant == "text" else {relevant}
    return tuple(s for s in CONTENT_SPANS if s not in drop)


def irrelevant_mask(spans: ModalitySpans, relevant: Sequence[str]) -> torch.Tensor:
    """`batch seq` True at the tokens of each row's task-irrelevant modality.

    Never padding, chat template, question or the answer position.

    Args:
        spans: The batch's spans (``loaded.spans(batch)``).
        relevant: Per row the relevant span name.
    """
    relevant = list(relevant)
    if len(relevant) != spans.batch_size:
        raise ValueError(f"relevant names {len(relevant)} span(s) for a batch of "
                         f"{spans.batch_size} rows")
    mask = torch.zeros(spans.codes.shape, dtype=torch.bool, device=spans.codes.device)
    for row, name in enumerate(relevant):
        for span in irrelevant_spans(name):
            mask[row] |= spans.codes[row] == span_index(span)
    rows = torch.arange(spans.batch_size, device=mask.device)
    mask[rows, spans.answer_positions()] = False
    return mask


def decoder_stack(loaded: Any) -> torch.nn.Module:
    """The module that runs the decoder layers (it receives the merged ``inputs_embeds``)."""
    path = loaded.adapter.layers.rsplit(".", 1)[0]
    return get_submodule(loaded.module, path)


@dataclass
class EmbeddingPerturbation:
    """Context manager: add ``delta`` at ``mask`` to the decoder stack's input embeddings.

    While active, every forward of ``loaded.module`` sees perturbed embeddings at the
    masked positions and the original ones, bit for bit, elsewhere.

    Attributes:
        loaded: The model.
        mask: `batch seq` booleans.
        delta: `batch seq hidden` float32 perturbation (may require grad).
        record: Keep the last forward's ``clean``/``perturbed`` embeddings and the
            ``position_ids`` the stack received (for checks).
    """

    loaded: Any
    mask: torch.Tensor
    delta: torch.Tensor
    record: bool = False
    clean: torch.Tensor | None = field(default=None, init=False)
    perturbed: torch.Tensor | None = field(default=None, init=False)
    position_ids: torch.Tensor | None = field(default=None, init=False)
    _handle: Any = field(default=None, init=False, repr=False)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
              ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            raise AdversarialError(
                f"{type(module).__name__} (the decoder stack) embeds token ids itself: this "
                "model does not merge image features into its token sequence (a "
                "cross-attention model such as Mllama reads them from the side), so there are "
                "no merged embeddings to perturb; train it without the adversarial term")
        if embeds.shape != self.delta.shape:
            raise AdversarialError(
                f"the decoder stack received embeddings of shape {tuple(embeds.shape)}, but "
                f"the perturbation is {tuple(self.delta.shape)}: mask and delta must be "
                "built for this batch")
        if embeds.dtype in (torch.bfloat16, torch.float16):
            warnings.warn(
                f"the decoder runs in {embeds.dtype}: the float32 perturbation is rounded to "
                "it when added, and a 1e-3 change of O(1) embeddings mostly rounds away; load "
                "the model in float32 and train under bf16 autocast to keep it",
                stacklevel=2)
        mask = self.mask.to(embeds.device)[..., None]
        shifted = (embeds.float() + self.delta.to(embeds.device)).to(embeds.dtype)
        perturbed = torch.where(mask, shifted, embeds)
        if self.record:
            self.clean, self.perturbed = embeds.detach(), perturbed.detach()
            pos = kwargs.get("position_ids")
            self.position_ids = pos.detach().clone() if isinstance(pos, torch.Tensor) else None
        return args, {**kwargs, "inputs_embeds": perturbed}

    def __enter__(self) -> EmbeddingPerturbation:  # noqa: PYI034 (py3.10: no typing.Self)
        """Install the hook on the decoder stack: every forward inside is perturbed."""
        self._handle = decoder_stack(self.loaded).register_forward_pre_hook(
            self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        """Remove the hook: forwards after the block run unperturbed."""
        self._handle.remove()
        self._handle = None


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project `batch seq hidden` perturbations onto the eps ball.

    Args:
        delta: The perturbations.
        eps: The radius of the ball.
        norm: ``"linf"`` (clamp every entry to ``[-eps, eps]``) or ``"l2"`` (shrink each
            row whose norm over ``seq hidden`` exceeds ``eps``).

    Returns:
        The projected perturbations, same shape.
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
        scale = (eps / norms).clamp(max=1.0)
        return delta * scale.view(-1, *([1] * (delta.dim() - 1)))
    raise ValueError(f"unknown adversarial norm {norm!r}; use one of {', '.join(ADV_NORMS)}")


def random_start(mask: torch.Tensor, hidden: int, config: AdversarialConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The projected Gaussian start ``delta_0`` (float32, zero outside ``mask``).

    Drawn on the CPU when a generator is given (so a seed gives the same start on any
    device), else with the global RNG on the mask's device.

    Args:
        mask: `batch seq` positions that may be perturbed.
        hidden: The embedding width.
        config: The attack's ``eps``, ``norm`` and start scale.
        generator: A seeded CPU generator, or None for the global RNG.

    Returns:
        `batch seq hidden` float32 start, projected onto the eps ball.
    """
    shape = (*mask.shape, hidden)
    if generator is not None:
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(mask.device)
    else:
        noise = torch.randn(shape, dtype=torch.float32, device=mask.device)
    noise = noise * mask[..., None]
    if config.norm == "linf":
        return project(noise * (config.init_scale * config.eps), config.eps, "linf")
    norms = noise.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1)
    return noise / norms * (config.init_scale * config.eps)


@dataclass
class AdversarialResult:
    """One masked adversarial perturbation and the answer loss under it.

    Attributes:
        loss: Mean answer loss on the perturbed embeddings (differentiable in the model's
            parameters; ``delta`` is a constant here).
        delta: `batch seq hidden` float32, detached, zero outside ``mask``.
        mask: `batch seq` the perturbed positions.
        ascent_losses: Mean answer loss at the start of each ascent step (the first is
            the loss at the random start).
    """

    loss: torch.Tensor
    delta: torch.Tensor
    mask: torch.Tensor
    ascent_losses: list[float]


def hidden_size(loaded: Any) -> int:
    """Width of the language model's input embeddings."""
    return int(loaded.module.get_input_embeddings().weight.shape[1])


def adversarial_delta(loaded: Any, batch: Mapping[str, Any], targets: torch.Tensor,
                      mask: torch.Tensor, config: AdversarialConfig = AdversarialConfig(),
                      *, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, list[float]]:
    """Find the perturbation by ``config.steps`` projected raw-gradient ascent steps.

    Each step is one forward and one backward to ``delta`` only
    (``torch.autograd.grad``: no parameter gradient is computed or accumulated).

    Args:
        loaded: The :class:`modprobe.LoadedModel` under attack.
        batch: The encoded prompts.
        targets: The answer token id of each row (the loss the attack raises).
        mask: `batch seq` positions the perturbation may touch (the irrelevant
            modality's tokens, :func:`irrelevant_mask`).
        config: Steps, radius, norm and step size of the attack.
        generator: A seeded CPU generator for the random start, or None.

    Returns:
        ``delta`` (detached float32, zero outside ``mask``) and the mean answer loss at
        the start of each step.
    """
    mask = mask.to(loaded.device).bool()
    delta = random_start(mask, hidden_size(loaded), config, generator)
    losses: list[float] = []
    keep = mask[..., None]
    for _ in range(config.steps):
        delta = delta.detach().requires_grad_(True)
        with torch.enable_grad(), EmbeddingPerturbation(loaded, mask, delta):
            per_row = answer_loss(answer_logits(loaded, batch), targets, reduction="none")
        losses.append(float(per_row.detach().mean()))
        (grad,) = torch.autograd.grad(per_row.sum(), delta)
        delta = project(delta.detach() + config.step_size * grad * keep, config.eps, config.norm)
    return delta.detach(), losses


def adversarial_loss(loaded: Any, batch: Mapping[str, Any], targets: torch.Tensor,
                     relevant: Sequence[str], config: AdversarialConfig = AdversarialConfig(),
                     *, generator: torch.Generator | None = None) -> AdversarialResult:
    """Answer loss on embeddings adversarially perturbed at the irrelevant modality.

    Args:
        loaded: The model (its parameters get gradients from ``result.loss.backward()``).
        batch: ``loaded.encode(prompts)`` output.
        targets: `batch` answer token ids.
        relevant: Per row the relevant span name; the others' tokens are perturbed
            (:func:`irrelevant_mask`). A row with no such tokens is left unperturbed.
        config: Steps, step size, ball.
        generator: Seeds the random start.
    """
    mask = irrelevant_mask(loaded.spans(dict(batch)), relevant).to(loaded.device)
    delta, losses = adversarial_delta(loaded, batch, targets, mask, config, generator=generator)
    with EmbeddingPerturbation(loaded, mask, delta):
        loss = answer_loss(answer_logits(loaded, batch), targets)
    return AdversarialResult(loss=loss, delta=delta, mask=mask, ascent_losses=losses)


__all__ = [
    "ADV_NORMS",
    "AdversarialConfig",
    "AdversarialError",
    "AdversarialResult",
    "EmbeddingPerturbation",
    "adversarial_delta",
    "adversarial_loss",
    "decoder_stack",
    "hidden_size",
    "irrelevant_mask",
    "irrelevant_spans",
    "project",
    "random_start",
]
