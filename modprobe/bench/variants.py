"""The four ways of getting lens + attention mass that the benchmark compares.

* ``bare``: the forward pass alone (SDPA), with the capture's own forward arguments
  (``logits_to_keep=1``, generation-style position ids), so ``capture / bare`` is the
  capture's overhead over the very forward it wraps.
* ``capture``: :func:`modprobe.capture.capture`, logit lens and attention mass of every
  layer and head at the answer position (one nnsight trace, SDPA).
* ``naive``: what one writes without modprobe: load with eager attention, run
  ``output_attentions=True, output_hidden_states=True`` (full logits, as a plain call
  returns), take the answer rows of every `batch head seq seq` map, and project every
  hidden state (final norm on all but the last, which transformers 5 already normalised).
* ``tl``: transformer-lens' ``run_with_cache`` through :mod:`modprobe.tl` (optional extra).

Every variant ends with the same numbers: `batch layer head span` mass and lens statistics.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from modprobe.bench.geometry import BenchGeometry, bench_batch, candidate_ids

#: Variant names, in the order the table lists them.
VARIANTS: tuple[str, ...] = ("bare", "capture", "naive", "tl")
#: Top-k the capture variants keep per layer.
TOP_K = 5


class VariantSkipped(RuntimeError):
    """A variant cannot run in this environment (e.g. transformer-lens is not installed)."""


@dataclass
class PreparedVariant:
    """A loaded model and batch, and the call that the benchmark times.

    Attributes:
        name: One of :data:`VARIANTS`.
        run: One complete run of the variant (its result is discarded).
        tokens: Tokens per row of the batch (checked against the geometry).
    """

    name: str
    run: Callable[[], Any]
    tokens: int


def _load(folder: str | os.PathLike[str], device: str, attn_implementation: str) -> Any:
    import modprobe

    return modprobe.load(folder, dtype="float32", device=device,
                         attn_implementation=attn_implementation)


def _bare(loaded: Any, batch: dict[str, torch.Tensor]) -> Callable[[], Any]:
    from modprobe.capture.trace import forward_kwargs

    kwargs = {**forward_kwargs(loaded, batch), "logits_to_keep": 1}

    def run() -> Any:
        with torch.no_grad():
            return loaded.module(**kwargs).logits

    return run


def _capture(loaded: Any, batch: dict[str, torch.Tensor]) -> Callable[[], Any]:
    from modprobe.capture import capture

    cands = candidate_ids(loaded)

    def run() -> Any:
        return capture(loaded, batch, candidates=cands, top_k=TOP_K, lens=True, attention=True)

    return run


def _naive(loaded: Any, batch: dict[str, torch.Tensor]) -> Callable[[], Any]:
    from modprobe.capture.attention import attention_rows_to_mass
    from modprobe.capture.lens import summarize
    from modprobe.capture.trace import forward_kwargs

    kwargs = forward_kwargs(loaded, batch)
    spans = loaded.spans(batch)
    positions = spans.answer_positions()
    rows = torch.arange(positions.shape[0])
    norm, head = loaded.adapter.norm(loaded.module), loaded.adapter.lm_head(loaded.module)
    cands = tuple(candidate_ids(loaded))

    def run() -> Any:
        with torch.no_grad():
            out = loaded.module(**kwargs, output_attentions=True, output_hidden_states=True)
            mass = torch.stack([attention_rows_to_mass(a[rows, :, positions], spans)
                                for a in out.attentions], dim=1)
            hidden = [h[rows, positions] for h in out.hidden_states[1:]]
            # transformers 5 returns the last hidden state already through the final norm.
            lens = torch.stack([head(norm(h)) for h in hidden[:-1]] + [head(hidden[-1])], dim=1)
            return mass, summarize(lens, cands, TOP_K), summarize(out.logits[rows, positions], cands, TOP_K)

    return run


def _transformer_lens(loaded: Any, batch: dict[str, torch.Tensor]) -> Callable[[], Any]:
    try:
        from modprobe.tl import boot_bridge, tl_lens_and_attention
    except Exception as err:  # ImportError without the extra; anything else from its import
        raise VariantSkipped(f"importing modprobe.tl failed: {type(err).__name__}: {err}") from err
    from modprobe.capture.attention import attention_rows_to_mass
    from modprobe.capture.lens import summarize

    try:
        # The child process owns this model: wrap it in place instead of a deep copy, so
        # the bridge does not pay for a second set of weights.
        bridge = boot_bridge(loaded, copy_module=False)
    except Exception as err:
        raise VariantSkipped(
            f"booting the transformer-lens bridge failed: {type(err).__name__}: {err}") from err
    spans = loaded.spans(batch)
    cands = tuple(candidate_ids(loaded))

    def run() -> Any:
        lens, rows = tl_lens_and_attention(bridge, batch)
        return attention_rows_to_mass(rows, spans), summarize(lens, cands, TOP_K)

    return run


_BUILDERS: dict[str, tuple[str, Callable[[Any, dict[str, torch.Tensor]], Callable[[], Any]]]] = {
    "bare": ("sdpa", _bare),
    "capture": ("sdpa", _capture),
    "naive": ("eager", _naive),
    # boot_bridge switches the model to eager itself (its pattern hooks need it).
    "tl": ("sdpa", _transformer_lens),
}


def prepare_variant(name: str, folder: str | os.PathLike[str], geometry: BenchGeometry,
                    device: str) -> PreparedVariant:
    """Load the benchmark model as the variant needs it and build its batch.

    Args:
        name: The variant (``bare``, ``capture``, ``naive`` or ``tl``).
        folder: The benchmark model's folder.
        geometry: Rows and tokens of the batch.
        device: Where the model runs.

    Returns:
        The variant with its ``run()`` and token count.

    Raises:
        VariantSkipped: the variant cannot run here (the reason is in the message).
        ValueError: for an unknown variant.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown variant {name!r}; use some of {', '.join(VARIANTS)}")
    attn_implementation, build = _BUILDERS[name]
    loaded = _load(folder, device, attn_implementation)
    batch = bench_batch(loaded, geometry)
    return PreparedVariant(name=name, run=build(loaded, batch),
                           tokens=int(batch["input_ids"].shape[1]))
