"""A tuned lens for VLMs: per-layer affine translators before the logit lens.

The tuned lens (Belrose et al. 2023) reads layer ``i``'s residual stream ``h`` through a
learned affine map before the final norm and unembedding,

    tuned_i(h) = unembed(norm(h + A_i h + b_i)),

with ``A_i = 0, b_i = 0`` at initialisation (exactly the logit lens), trained to
minimise the KL divergence from the model's final distribution to ``tuned_i``. Here the
translators are trained on the model's own hidden states at the answer position of the
prompts it is studied on (images included). They are a small safetensors file
(:data:`TRANSLATORS_FILE`, next to the model) that records the model's weight
fingerprint; translators of another model are refused.

The recipe is implemented here rather than taken from the ``tuned-lens`` package: the
package (0.2.0) finds the unembedding and final norm of a text causal LM only, imports
TransformerLens' removed ``HookedTransformer`` at load time, and depends on wandb,
datasets and torchdata.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from modprobe.capture.lens import lens_logits
from modprobe.errors import ModprobeError

TRANSLATORS_FILE = "tuned_lens.safetensors"


class TranslatorError(ModprobeError, ValueError):
    """Translators that do not fit the model (another model's, a damaged file)."""


def weights_fingerprint(loaded: Any) -> str:
    """The model's weights hash (:func:`modprobe.fingerprint.model_fingerprint`)."""
    from modprobe.fingerprint import model_fingerprint

    return model_fingerprint(loaded.module)["weights"]


@dataclass
class Translators:
    """Per-layer affine translators ``h -> h + h A_i^T + b_i``.

    Attributes:
        weight: `layer hidden hidden` the ``A_i`` (zero: identity translator).
        bias: `layer hidden` the ``b_i``.
        fingerprint: Weights fingerprint of the model they were trained on.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    fingerprint: str

    @classmethod
    def identity(cls, loaded: Any) -> Translators:
        """Identity translators for ``loaded`` (the tuned lens equals the logit lens)."""
        layers = loaded.adapter.num_layers(loaded.module)
        hidden = int(loaded.adapter.lm_head(loaded.module).weight.shape[1])
        return cls(torch.zeros(layers, hidden, hidden), torch.zeros(layers, hidden),
                   weights_fingerprint(loaded))

    @property
    def num_layers(self) -> int:
        """The number of decoder layers translated (one translator each)."""
        return int(self.weight.shape[0])

    def apply(self, hidden: torch.Tensor) -> torch.Tensor:
        """`batch layer hidden` translated states (computed in float32)."""
        h = hidden.float()
        w, b = self.weight.to(h.device), self.bias.to(h.device)
        return h + torch.einsum("blh,lgh->blg", h, w) + b

    def check(self, loaded: Any) -> None:
        """Refuse translators trained on another model."""
        mine = weights_fingerprint(loaded)
        layers = loaded.adapter.num_layers(loaded.module)
        if self.fingerprint != mine or self.num_layers != layers:
            raise TranslatorError(
                f"these translators were trained on another model (fingerprint "
                f"{self.fingerprint[:12]}, {self.num_layers} layers; this model: {mine[:12]}, "
                f"{layers} layers); train translators for it with train_translators")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a safetensors file (refuses to overwrite an existing one)."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.exists():
            raise TranslatorError(f"{path} already exists; choose another path or remove it")
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()},
                  str(path), metadata={"fingerprint": self.fingerprint, "format": "modprobe-tuned-lens-1"})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], loaded: Any | None = None) -> Translators:
        """Read translators; with ``loaded``, refuse them unless trained on that model.

        Args:
            path: A translators file, or a folder holding ``tuned_lens.safetensors``.
            loaded: The model they must belong to (None: not checked).

        Returns:
            The :class:`Translators`.

        Raises:
            TranslatorError: no file, not a translators file, or trained on another model.
        """
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            path = path / TRANSLATORS_FILE
        if not path.is_file():
            raise TranslatorError(f"no translators at {path}; train them with train_translators")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                out = cls(f.get_tensor("weight"), f.get_tensor("bias"), meta["fingerprint"])
        except (KeyError, OSError, RuntimeError, ValueError, SafetensorError) as exc:
            raise TranslatorError(f"{path} is not a modprobe translators file ({exc})") from None
        if loaded is not None:
            out.check(loaded)
        return out


def tuned_logits(
    hidden: torch.Tensor,
    translators: Translators,
    norm: Callable[[torch.Tensor], torch.Tensor],
    unembed: Callable[[torch.Tensor], torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """`batch layer vocab` tuned-lens logits of `batch layer hidden` residual states.

    ``transform`` is the model's logit transform (``Adapter.logit_transform``), as for the
    logit lens.

    Args:
        hidden: `batch layer hidden` residual states.
        translators: The model's :class:`Translators`.
        norm: The final norm.
        unembed: The unembedding.
        transform: The model's logit transform (None: none).

    Returns:
        The logits of the translated states.
    """
    translated = translators.apply(hidden).to(hidden.dtype)
    return lens_logits(translated, norm, unembed, transform)


def layer_kl(logits: torch.Tensor, final_logits: torch.Tensor) -> torch.Tensor:
    """`layer` mean KL(final || lens) in nats over the batch.

    Args:
        logits: `batch layer vocab` lens logits.
        final_logits: `batch vocab` the model's own logits.

    Returns:
        One KL per layer.
    """
    target = torch.log_softmax(final_logits.float(), -1).unsqueeze(1)
    log_q = torch.log_softmax(logits.float(), -1)
    return (target.exp() * (target - log_q)).sum(-1).mean(0)


def train_translators(
    loaded: Any,
    hidden: torch.Tensor,
    final_logits: torch.Tensor,
    *,
    steps: int = 200,
    lr: float = 1e-3,
    seed: int = 0,
) -> Translators:
    """Fit translators by the tuned-lens recipe on answer-position states.

    Args:
        loaded: The model the states come from (its norm and unembedding stay frozen).
        hidden: `item layer hidden` residual states at the answer position
            (``capture(...)`` internals: :func:`collect_states`).
        final_logits: `item vocab` the model's final logits at the same positions.
        steps: Full-batch Adam steps.
        lr: Learning rate.
        seed: Unused by full-batch training; kept so runs record it.

    Returns:
        Trained :class:`Translators` (identity at step 0).
    """
    torch.manual_seed(seed)
    out = Translators.identity(loaded)
    weight = out.weight.clone().requires_grad_(True)
    bias = out.bias.clone().requires_grad_(True)
    norm = loaded.adapter.norm(loaded.module)
    unembed = loaded.adapter.lm_head(loaded.module)
    transform = loaded.adapter.logit_transform(loaded.module)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    hidden = hidden.detach().float()
    for _ in range(steps):
        opt.zero_grad()
        trial = Translators(weight, bias, out.fingerprint)
        loss = layer_kl(tuned_logits(hidden, trial, norm, unembed, transform), final_logits).sum()
        loss.backward()
        opt.step()
    return Translators(weight.detach(), bias.detach(), out.fingerprint)


def collect_states(loaded: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """`item layer hidden` answer-position states and `item vocab` final logits of a batch.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        batch: An encoded batch.

    Returns:
        ``(hidden, final_logits)``, float32, without gradients.
    """
    from modprobe.capture.trace import run_trace

    spans = loaded.spans(batch)
    with torch.no_grad():
        raw = run_trace(loaded, batch, spans, spans.answer_positions(), lens=True, attention=False)
    assert raw.hidden is not None
    return raw.hidden.float(), raw.final_logits.float()


def states_of_prompts(loaded: Any, prompts: list[Any], batch_size: int = 16,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`collect_states` over prompts, ``batch_size`` at a time (concatenated).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        prompts: The prompts.
        batch_size: Prompts per forward pass.

    Returns:
        ``(hidden, final_logits)`` of all prompts, in order.
    """
    hidden, final = [], []
    for start in range(0, len(prompts), batch_size):
        h, f = collect_states(loaded, loaded.encode(prompts[start:start + batch_size]))
        hidden.append(h)
        final.append(f)
    return torch.cat(hidden), torch.cat(final)


def held_out_kl(loaded: Any, translators: Translators, hidden: torch.Tensor,
                final_logits: torch.Tensor) -> torch.Tensor:
    """`layer` mean KL(final || tuned lens) of held-out states, in nats.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel` the states come from.
        translators: The translators to evaluate.
        hidden: `item layer hidden` held-out states (:func:`collect_states`).
        final_logits: `item vocab` their final logits.

    Returns:
        One KL per layer.
    """
    norm = loaded.adapter.norm(loaded.module)
    unembed = loaded.adapter.lm_head(loaded.module)
    with torch.no_grad():
        logits = tuned_logits(hidden, translators, norm, unembed,
                              loaded.adapter.logit_transform(loaded.module))
        return layer_kl(logits, final_logits)
