"""Which image-text-to-text families modprobe can adapt: a structural survey, no weights.

``python -m modprobe.testing survey`` builds every model class of transformers'
image-text-to-text auto mapping from its default config on the ``meta`` device (no
memory, no download), picks its adapter (dedicated or generic) and checks what the
capture needs: an image token id in the config, decoder layers, a final norm, an
unembedding, and in every decoder layer a self-attention that calls transformers'
``attention_interface``. It says whether a family *adapts*; whether the capture is then
exact is what the tiny-model matrix (``tests/test_families.py``) checks, per family.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class FamilyStatus:
    """What the survey found for one ``model_type``.

    Attributes:
        model_type: The config's ``model_type``.
        model_class: The class the auto mapping names.
        status: ``"adapts"``, ``"lens only"`` (attention refused), ``"eager only"``
            (soft-capped attention), ``"refused"`` or ``"not built"``.
        reason: Why, for every status but ``"adapts"``.
        adapter: The adapter's family name (``generic:<model_type>`` or a dedicated one).
    """

    model_type: str
    model_class: str
    status: str
    reason: str = ""
    adapter: str = ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def survey_family(model_type: str, model_class: str) -> FamilyStatus:
    """Adapt one family's default-config model, built on the meta device.

    Args:
        model_type: The transformers model type (``llava``, ``qwen2_vl``...).
        model_class: The class name ``AutoModelForImageTextToText`` maps it to.

    Returns:
        Its status (adapts, lens only, eager only, refused, not built), the reason and
        the adapter's name.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    from modprobe.adapters import AdapterError, adapter_for

    try:
        config = AutoConfig.for_model(model_type)
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForImageTextToText.from_config(config)
    except Exception as err:  # noqa: BLE001 - any failure to build is the finding
        return FamilyStatus(model_type, model_class, "not built",
                            f"{type(err).__name__}: {_first_line(err)}")
    try:
        adapter = adapter_for(model)
        adapter.token_ids(model.config)
        layers = adapter.decoder_layers(model)
    except AdapterError as err:
        return FamilyStatus(model_type, model_class, "refused", _first_line(err))
    missing = [i for i, layer in enumerate(layers) if not hasattr(layer, adapter.attention)]
    if missing:
        kinds = sorted({type(layers[i]).__name__ for i in missing})
        return FamilyStatus(model_type, model_class, "lens only",
                            f"{len(missing)} of {len(layers)} layers ({', '.join(kinds)}) run no "
                            "softmax self-attention: capture(..., attention=False)",
                            adapter.family)
    kinds = {type(getattr(layer, adapter.attention)) for layer in layers}
    for kind in kinds:
        try:
            source = inspect.getsource(kind.forward)
        except (OSError, TypeError):
            source = ""
        if "attention_interface(" not in source:
            return FamilyStatus(model_type, model_class, "refused",
                                f"{kind.__name__} does not call transformers' attention_interface",
                                adapter.family)
    text = adapter.language_config(model.config)
    if getattr(text, "attn_logit_softcapping", None) is not None:
        return FamilyStatus(model_type, model_class, "eager only",
                            "soft-capped attention: load with attn_implementation='eager'",
                            adapter.family)
    return FamilyStatus(model_type, model_class, "adapts", "", adapter.family)


def survey(model_types: list[str] | None = None) -> list[FamilyStatus]:
    """:func:`survey_family` over transformers' image-text-to-text auto mapping."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    mapping: dict[str, Any] = dict(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
    names = model_types if model_types is not None else list(mapping)
    return [survey_family(name, mapping.get(name, "?")) for name in names]


def markdown_table(rows: list[FamilyStatus]) -> str:
    """The survey as a markdown table (model_type, class, status, reason)."""
    lines = ["| model_type | class | survey | reason |", "|---|---|---|---|"]
    for row in rows:
        reason = row.reason.replace("|", "\\|")
        lines.append(f"| `{row.model_type}` | {row.model_class} | {row.status} | {reason} |")
    return "\n".join(lines)
