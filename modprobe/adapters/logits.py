"""What a model's forward does to its unembedding's output, read from the model.

Some families do not return ``lm_head(norm(h))`` as their logits: Cohere multiplies them
by ``logit_scale``, Granite divides them by ``logits_scaling`` (HyperCLOVAX multiplies by
an attribute of the same name), Gemma 2 and PaliGemma 2 squash them with
``cap * tanh(logits / cap)``. The logit lens must do the same, or its last layer is not
the model's output. :func:`find_logit_transform` reads which of these a model applies
from the source of its ``forward`` (and of the module that owns the unembedding): a
config attribute counts only where the forward uses it, and a division where the forward
divides by it. The capture checks the result at run time (the last layer's lens must be
the model's logits), so a transform this reading misses is refused, never silent.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch

#: Config attributes that rescale the logits after the unembedding (multiply or divide,
#: whichever the forward does), applied before any soft cap.
SCALE_ATTRIBUTES = ("logit_scale", "logits_scaling", "output_multiplier", "lm_head_multiplier")
#: Config attribute of the final soft cap, ``cap * tanh(logits / cap)``, applied last.
SOFTCAP_ATTRIBUTE = "final_logit_softcapping"


@dataclass(frozen=True)
class LogitTransform:
    """The elementwise steps between the unembedding's output and the model's logits.

    Attributes:
        steps: ``(operation, config attribute, value)`` in the order the forward applies
            them; ``operation`` is ``"mul"``, ``"div"`` or ``"softcap"``.
    """

    steps: tuple[tuple[str, str, float], ...] = ()

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Apply the steps to `... vocab` unembedding outputs, as the forward does."""
        for operation, _, value in self.steps:
            if operation == "mul":
                logits = logits * value
            elif operation == "div":
                logits = logits / value
            else:
                logits = torch.tanh(logits / value) * value
        return logits

    def describe(self) -> str:
        """``logit_scale=0.0625 (mul)``-style summary, or ``none``."""
        return ", ".join(f"{attr}={value:g} ({op})" for op, attr, value in self.steps) or "none"


@functools.lru_cache(maxsize=64)
def _forward_source(cls: type) -> str | None:
    try:
        return inspect.getsource(cls.forward)
    except (OSError, TypeError, AttributeError):
        return None


def find_logit_transform(model: Any, text_config: Any, head_owner: Any = None) -> LogitTransform:
    """The logit transform ``model``'s forward applies after its unembedding.

    Args:
        model: The torch model.
        text_config: Its language model's config (where the attributes live).
        head_owner: The module whose attribute the unembedding is (a nested causal LM's
            forward may apply the transform, as Llama 4's and InstructBLIP's do); None
            when it is ``model`` itself.

    Returns:
        The :class:`LogitTransform`. Where no forward source can be read, every attribute
        the config sets is applied (``logits_scaling`` divides, as Granite's does).
    """
    owners = [model] if head_owner is None or head_owner is model else [model, head_owner]
    sources = [_forward_source(type(m)) for m in owners]
    readable = [s for s in sources if s is not None]
    code = "\n".join(readable)
    steps: list[tuple[str, str, float]] = []
    for attr in (*SCALE_ATTRIBUTES, SOFTCAP_ATTRIBUTE):
        value = getattr(text_config, attr, None)
        if value is None or isinstance(value, bool):
            continue
        if readable and not re.search(rf"\b{attr}\b", code):
            continue  # the config sets it, but this forward does not use it
        if attr == SOFTCAP_ATTRIBUTE:
            steps.append(("softcap", attr, float(value)))
        elif not readable:
            steps.append(("div" if attr == "logits_scaling" else "mul", attr, float(value)))
        elif float(value) != 1.0:
            divides = re.search(rf"/\s*[\w.()\[\]]*\b{attr}\b", code)
            steps.append(("div" if divides else "mul", attr, float(value)))
    return LogitTransform(tuple(steps))
