"""The :class:`Capture` result: shape-named tensors and their tidy tables."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import torch

from modprobe.capture.candidates import Candidates, decode_token
from modprobe.spans import SPAN_NAMES, ModalitySpans

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True)
class CaptureFrames:
    """Tidy tables of a :class:`Capture` (one row per observation).

    Attributes:
        lens: One row per (row, layer): ``row, layer, entropy, top1_id, top1_token,
            top1_prob`` then ``logit_<cand>, prob_<cand>`` per candidate.
        attention: One row per (row, layer, head, span): ``row, layer, head, span, mass``;
            ``span`` is categorical in :data:`~modprobe.spans.SPAN_NAMES` order (image,
            video, audio, context, text), where ``context`` is the prompt's description
            and ``text`` the question and chat template (all text = context + text).
        final: One row per batch row: ``row, position, entropy, top1_id, top1_token,
            top1_prob`` then ``logit_<cand>, prob_<cand>`` (the model's own logits).
    """

    lens: pd.DataFrame
    attention: pd.DataFrame
    final: pd.DataFrame


@dataclass
class Capture:
    """Logit lens and attention mass at the answer position of each row of a batch.

    Layers are the decoder layers ``0..L-1``; the lens of layer ``i`` reads the residual
    stream after decoder layer ``i`` (final norm, then unembedding). The ``span`` axis
    follows :data:`modprobe.spans.SPAN_NAMES` (image, video, audio, context, text:
    ``context`` is the description, ``text`` the question and chat template; all text is
    their sum; the context span needs a batch from ``encode``). Float tensors
    are float32; under ``capture(..., grad=True)`` they are attached to the model's graph.

    Attributes:
        spans: Modality of every token of the batch.
        answer_positions: `batch` query position of each row (the last prompt token
            unless other positions were asked for).
        candidates: Candidate answers (ids, labels, decoded tokens); `cand` axis order.
        lens_entropy: `batch layer` full-vocabulary entropy (nats) of the lens.
        lens_topk_ids: `batch layer k` most probable lens tokens, best first.
        lens_topk_probs: `batch layer k` their probabilities.
        lens_candidate_logits: `batch layer cand` lens logit of each candidate.
        lens_candidate_probs: `batch layer cand` lens probability of each candidate.
        final_logits: `batch vocab` the model's own logits at the answer position.
        final_entropy: `batch` entropy (nats) of the model's next-token distribution.
        final_topk_ids: `batch k`.
        final_topk_probs: `batch k`.
        final_candidate_logits: `batch cand`.
        final_candidate_probs: `batch cand`.
        attention_mass: `batch layer head span` attention the answer position gives each
            span; sums to 1 over ``span`` (None when attention was not captured).
        attention_log_mass: `batch layer head span` log of ``attention_mass`` computed in
            log space from the attention scores: exact where the mass underflows, with a
            bounded gradient (only from ``capture(..., grad=True)``; else None).
        lens_logits: `batch layer vocab` (only with ``keep_lens_logits=True``).
        tuned_entropy, tuned_topk_ids, tuned_topk_probs, tuned_candidate_logits,
        tuned_candidate_probs, tuned_logits: the same statistics of the tuned lens (only
            with ``capture(..., lens="tuned", translators=...)``).
        tokenizer: Used to decode token ids in :meth:`to_frames`.
    """

    spans: ModalitySpans
    answer_positions: torch.Tensor
    candidates: Candidates
    final_logits: torch.Tensor
    final_entropy: torch.Tensor
    final_topk_ids: torch.Tensor
    final_topk_probs: torch.Tensor
    final_candidate_logits: torch.Tensor
    final_candidate_probs: torch.Tensor
    lens_entropy: torch.Tensor | None = None
    lens_topk_ids: torch.Tensor | None = None
    lens_topk_probs: torch.Tensor | None = None
    lens_candidate_logits: torch.Tensor | None = None
    lens_candidate_probs: torch.Tensor | None = None
    attention_mass: torch.Tensor | None = None
    attention_log_mass: torch.Tensor | None = None
    lens_logits: torch.Tensor | None = None
    tuned_entropy: torch.Tensor | None = None
    tuned_topk_ids: torch.Tensor | None = None
    tuned_topk_probs: torch.Tensor | None = None
    tuned_candidate_logits: torch.Tensor | None = None
    tuned_candidate_probs: torch.Tensor | None = None
    tuned_logits: torch.Tensor | None = None
    tokenizer: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ shape helpers
    @property
    def batch_size(self) -> int:
        """The number of prompts captured."""
        return int(self.answer_positions.shape[0])

    @property
    def num_layers(self) -> int:
        """The number of decoder layers captured (0 when neither lens nor attention was)."""
        for t in (self.lens_entropy, self.attention_mass):
            if t is not None:
                return int(t.shape[1])
        return 0

    @property
    def num_heads(self) -> int:
        """The number of attention heads (0 without the attention mass)."""
        return 0 if self.attention_mass is None else int(self.attention_mass.shape[2])

    @property
    def span_names(self) -> tuple[str, ...]:
        """The names of the span axis of ``attention_mass`` (:data:`~modprobe.spans.SPAN_NAMES`)."""
        return SPAN_NAMES

    def cpu(self) -> Capture:
        """A detached copy with every tensor on the CPU (drops the autograd graph)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value.detach().cpu()
        changes["spans"] = ModalitySpans(self.spans.codes.detach().cpu())
        return replace(self, **changes)

    # ------------------------------------------------------------------ tables
    def to_frames(self) -> CaptureFrames:
        """Tidy pandas tables ``lens``, ``attention``, ``final`` (see :class:`CaptureFrames`)."""
        import numpy as np
        import pandas as pd

        cap = self.cpu()
        labels = cap.candidates.labels
        decode = _Decoder(cap.tokenizer)

        # lens: batch x layer rows
        if cap.lens_entropy is not None:
            assert cap.lens_topk_ids is not None and cap.lens_topk_probs is not None
            assert cap.lens_candidate_logits is not None and cap.lens_candidate_probs is not None
            b, n_layers = cap.lens_entropy.shape
            top1 = cap.lens_topk_ids[..., 0].reshape(-1).tolist()
            lens: dict[str, Any] = {
                "row": np.repeat(np.arange(b), n_layers),
                "layer": np.tile(np.arange(n_layers), b),
                "entropy": cap.lens_entropy.reshape(-1).numpy(),
                "top1_id": top1,
                "top1_token": [decode(t) for t in top1],
                "top1_prob": cap.lens_topk_probs[..., 0].reshape(-1).numpy(),
            }
            for j, label in enumerate(labels):
                lens[f"logit_{label}"] = cap.lens_candidate_logits[..., j].reshape(-1).numpy()
                lens[f"prob_{label}"] = cap.lens_candidate_probs[..., j].reshape(-1).numpy()
            lens_df = pd.DataFrame(lens)
        else:
            lens_df = pd.DataFrame(
                columns=["row", "layer", "entropy", "top1_id", "top1_token", "top1_prob"]
            )

        # attention: batch x layer x head x span rows
        if cap.attention_mass is not None:
            b, n_layers, heads, n_spans = cap.attention_mass.shape
            grid = np.indices((b, n_layers, heads, n_spans)).reshape(4, -1)
            attention_df = pd.DataFrame(
                {
                    "row": grid[0],
                    "layer": grid[1],
                    "head": grid[2],
                    "span": pd.Categorical(
                        np.asarray(SPAN_NAMES)[grid[3]], categories=list(SPAN_NAMES)
                    ),
                    "mass": cap.attention_mass.reshape(-1).numpy(),
                }
            )
        else:
            attention_df = pd.DataFrame(columns=["row", "layer", "head", "span", "mass"])

        # final: one row per batch row
        top1 = cap.final_topk_ids[:, 0].tolist()
        final: dict[str, Any] = {
            "row": np.arange(cap.batch_size),
            "position": cap.answer_positions.numpy(),
            "entropy": cap.final_entropy.numpy(),
            "top1_id": top1,
            "top1_token": [decode(t) for t in top1],
            "top1_prob": cap.final_topk_probs[:, 0].numpy(),
        }
        for j, label in enumerate(labels):
            final[f"logit_{label}"] = cap.final_candidate_logits[:, j].numpy()
            final[f"prob_{label}"] = cap.final_candidate_probs[:, j].numpy()
        return CaptureFrames(lens=lens_df, attention=attention_df, final=pd.DataFrame(final))


class _Decoder:
    """Memoised token decoding (a lens table repeats the same few tokens many times)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        if token_id not in self.cache:
            self.cache[token_id] = decode_token(self.tokenizer, token_id)
        return self.cache[token_id]
