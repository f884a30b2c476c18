"""Run-time checks every capture makes on what it read, at no measurable cost.

A transformers release can change what a family's forward does (a new logit scale, a
mask built differently) without changing anything modprobe reads, and every number
would then be silently wrong. Two identities hold whenever the capture is right, and
both are read from tensors the trace already holds:

* the last layer's logit lens is the model's own logits at the query position (one
  `batch vocab` comparison; the model computed those logits anyway);
* the attention mass of every row, layer and head sums to 1 over the spans (the keys a
  query may see are exactly the prompt's non-padding tokens, each in one span).

A capture that breaks either is refused with :class:`CaptureInvariantError`.
"""

from __future__ import annotations

import torch

from modprobe.errors import ModprobeError


class CaptureInvariantError(ModprobeError):
    """The capture's numbers contradict the model's own forward: refused, not returned."""


def lens_tolerance(dtype: torch.dtype) -> float:
    """Bound on ``max|lens - logits| / max|logits|`` for a model computing in ``dtype``.

    In float32 the lens and the model apply the same norm and unembedding to the same
    vector and differ only in summation order (a few ulp, about 1e-6 of the largest
    logit): 1e-4 leaves a wide margin. In bfloat16 and float16 every stored activation
    and logit is rounded to 8 or 11 significant bits, and the two computations may round
    the normed state and the logits differently, half an ulp each: 4 machine epsilons of
    the largest logit (0.031 in bfloat16, 0.0039 in float16). A transform the lens
    misses is far larger (Cohere's 0.0625 scale: 0.94; Granite's division by 8: 0.88).
    """
    return max(1e-4, 4 * torch.finfo(dtype).eps) if dtype.is_floating_point else 1e-4


def _versions() -> str:
    import transformers

    return f"transformers {transformers.__version__}, torch {torch.__version__}"


def check_lens_is_logits(
    last_lens: torch.Tensor, logits: torch.Tensor, family: str, transform: str = "none"
) -> None:
    """Refuse a capture whose last-layer lens is not the model's logits.

    Args:
        last_lens: `batch vocab` lens logits of the last decoder layer, model dtype.
        logits: `batch vocab` the model's own logits at the same positions.
        family: The adapter's family, for the message.
        transform: The logit transform the lens applied (``LogitTransform.describe()``).

    Raises:
        CaptureInvariantError: one line naming the family, the versions and the gap.
    """
    bound = lens_tolerance(logits.dtype)
    tiny = torch.finfo(torch.float32).tiny
    with torch.no_grad():
        lens, ref = last_lens.detach().float(), logits.detach().float().to(last_lens.device)
        diff = (lens - ref).abs()
        gap = (diff.amax(dim=-1) / ref.abs().amax(dim=-1).clamp_min(tiny)).max()
        if float(gap) <= bound:  # the usual case: two reductions, one host sync
            return
        # NaN or inf somewhere (or a real gap): a model that itself outputs NaN or inf is
        # not the lens's fault, so equal non-finite entries count as agreeing
        same = (lens == ref) | (lens.isnan() & ref.isnan())
        diff = torch.where(same, torch.zeros_like(lens), diff)
        finite = torch.where(ref.isfinite(), ref.abs(), torch.zeros_like(ref))
        gap = (diff.amax(dim=-1) / finite.amax(dim=-1).clamp_min(tiny)).max()
        worst = float(diff.max())
    if not float(gap) <= bound:  # also refuses NaN
        raise CaptureInvariantError(
            f"capture refused: for this {family} model under {_versions()}, the last "
            f"layer's logit lens differs from the model's own logits by {worst:.3g} "
            f"({float(gap):.3g} of the largest logit; {logits.dtype} allows {bound:.2g}; "
            f"logit transform applied: {transform}), so the forward changes its logits in "
            "a way modprobe does not follow; install the tested versions (pip install -c "
            "constraints.txt, see the README) and report the family and versions."
        )


def check_mass_sums_to_one(mass: torch.Tensor, family: str, seq_len: int) -> None:
    """Refuse a capture whose attention mass does not sum to 1 over the spans.

    Args:
        mass: `batch layer head span` float32 attention mass.
        family: The adapter's family, for the message.
        seq_len: Keys per row (the float32 sum's rounding grows with it).

    Raises:
        CaptureInvariantError: one line naming the family, the versions and the gap.
    """
    with torch.no_grad():
        # NaN mass comes from a model whose own activations are NaN (a diverged
        # fine-tuning run): visible to the user, and not the capture's error
        gap = (mass.detach().float().sum(dim=-1) - 1).abs().nan_to_num(nan=0.0)
        worst = gap.max() if gap.numel() else torch.tensor(0.0)
    # a float32 sum of seq_len probabilities rounds by at most seq_len ulp of 1
    bound = 1e-4 + seq_len * torch.finfo(torch.float32).eps
    if not float(worst) <= bound:
        where = [int(i) for i in torch.nonzero(gap == worst)[0]] if gap.numel() else []
        raise CaptureInvariantError(
            f"capture refused: for this {family} model under {_versions()}, the attention "
            f"mass over the spans sums to 1 off by {float(worst):.3g} (bound {bound:.2g}; "
            f"row, layer, head {where}), so some key the query sees is in no span or the "
            "mask differs from the model's; install the tested versions (pip install -c "
            "constraints.txt, see the README) and report the family and versions."
        )
