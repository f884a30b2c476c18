"""Causal interventions on the capture's hooks: attention knockout and activation patching.

**Attention knockout** blocks the query (answer) position's attention to the keys of one
span (image, video, audio, context, text) at one decoder layer or a window of layers.
The model keeps running its own kernel (SDPA): the trace replaces the mask argument of
the same ``attention_interface(self, query, key, value, mask, ...)`` call the capture
reads (:mod:`.trace`) with a 4-D mask that equals the one the kernel would have used,
except that the answer row no longer reaches the span. Where the kernel got no mask
(SDPA's causal fast path) the causal mask is built the way transformers builds it. The
query position always keeps its own key, so a row is never left with nothing to attend
to (knocking out ``text`` removes every other text token).

**Activation patching** overwrites a decoder layer's output (the residual stream) at
some positions of a *target* run with the same layer's output at the corresponding
positions of a *source* run (:func:`corresponding_positions`: every real token, the
tokens of one span in order, or the answer position), then reads the target's logits.

```python
from modprobe.capture.interventions import knockout, patch
out = knockout(lm, batch, span="image", layers=[3], candidates=["red", "blue"])
out.knocked_candidate_logits - out.clean_candidate_logits      # batch cand
```

The knockout lives in :mod:`~modprobe.capture.knockout`, the patching in
:mod:`~modprobe.capture.patching` and what they share in
:mod:`~modprobe.capture.intervention_common`; this module gathers them.
"""

from __future__ import annotations

from modprobe.capture.intervention_common import (
    InterventionError,
    check_layers,
    clean_logits,
    encode_batch,
    layer_output,
    logit_setup,
)
from modprobe.capture.knockout import (
    KnockoutResult,
    knockout,
    knockout_mask,
    knockout_trace,
    span_keys,
)
from modprobe.capture.patching import (
    PATCH_SITES,
    corresponding_positions,
    patch,
    patch_trace,
    residual_stream,
    restored_share,
)

__all__ = [
    "PATCH_SITES", "InterventionError", "KnockoutResult", "check_layers", "clean_logits",
    "corresponding_positions", "encode_batch", "knockout", "knockout_mask", "knockout_trace",
    "layer_output", "logit_setup", "patch", "patch_trace", "residual_stream",
    "restored_share", "span_keys",
]
