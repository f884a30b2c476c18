"""Study conditions as sets of modalities.

A condition says which input parts its prompts hold beside the question: the
modality-conflict study's ``vision``, ``text`` and ``multi`` are ``{image}``,
``{context}`` and ``{image, context}``; audio-visual studies use sets such as
``{video, audio}``.
"""

from __future__ import annotations

#: The input parts a prompt can hold beside its question.
MODALITIES: tuple[str, ...] = ("image", "video", "audio", "context")

#: The named conditions as the sets of modalities their prompts hold.
CONDITION_MODALITIES: dict[str, frozenset[str]] = {
    "vision": frozenset({"image"}),
    "text": frozenset({"context"}),
    "multi": frozenset({"image", "context"}),
}


def condition_modalities(condition: str | set[str] | frozenset[str]) -> frozenset[str]:
    """The modality set of a condition: a name of :data:`CONDITION_MODALITIES` or a set.

    Raises:
        ValueError: on an unknown name or modality.
    """
    if isinstance(condition, str):
        if condition not in CONDITION_MODALITIES:
            raise ValueError(f"unknown condition {condition!r}; use one of "
                             f"{', '.join(CONDITION_MODALITIES)} or a set of {', '.join(MODALITIES)}")
        return CONDITION_MODALITIES[condition]
    unknown = set(condition) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; use {', '.join(MODALITIES)}")
    return frozenset(condition)
