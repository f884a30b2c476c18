"""One chunk of an interference run: every item clean and perturbed, captured in batches.

:func:`condition_variants` lists each item's clean input and its perturbations, once per
perturbation draw; :func:`run_chunk` captures them (logit lens and attention mass at the
answer position) and returns the chunk's tables; :func:`answer_candidates` picks the
answers the lens scores at every layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modprobe.data.tasks import TaskItem

if TYPE_CHECKING:  # pragma: no cover
    from modprobe.study.interference import InterferenceConfig


def answer_candidates(items: Sequence[TaskItem], loaded: Any) -> list[str]:
    """The answers the lens scores at every layer.

    Args:
        items: The run's task items.
        loaded: The :class:`~modprobe.loading.LoadedModel` (its tokenizer).

    Returns:
        Every answer and option (and option letter) whose first token is a known token
        of the tokenizer not taken by an earlier one, in first-seen order.
    """
    from modprobe.data.choice import LETTERS

    words: list[str] = []
    for item in items:
        words += [item.answer, *(item.options or [])]
        if item.format == "choice":
            words += list(LETTERS[:len(item.options or [])])
    tokenizer = loaded.tokenizer
    unknown = getattr(tokenizer, "unk_token_id", None)
    taken: set[int] = set()
    kept: list[str] = []
    for word in dict.fromkeys(words):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if ids and ids[0] != unknown and ids[0] not in taken:
            taken.add(ids[0])
            kept.append(word)
    return kept


def _first_token_aliases(item: TaskItem, tokenizer: Any) -> dict[str, int]:
    """``{decoded first token: option index}`` of a multiple-choice item's options.

    A one-token answer can only be an option's first token.
    """
    from modprobe.analysis import normalize_answer

    aliases: dict[str, int] = {}
    for i, option in enumerate(item.options or []):
        ids = tokenizer(option, add_special_tokens=False)["input_ids"]
        if ids:
            aliases.setdefault(str(normalize_answer(tokenizer.decode(ids[:1]))), i)
    return aliases


def condition_variants(items: Sequence[TaskItem], names: Sequence[str],
                       config: InterferenceConfig, size: tuple[int, int],
                       ) -> list[tuple[int, int, TaskItem]]:
    """Every item's clean input and its perturbations, once per perturbation draw.

    Args:
        items: The chunk's task items.
        names: The run's perturbations (each item gets those that apply to it).
        config: The run's options (seeds, draws, text baseline, perturbation options).
        size: The size of image perturbations.

    Returns:
        ``(draw, seed, variant)`` in item, then draw, then condition order; the clean
        input of a text-heavy item is under ``config.text_baseline``.
    """
    from modprobe.perturb import applicable, draw_seeds, perturb, text_baseline

    seeds = draw_seeds(config.data_seed, config.draws)
    variants: list[tuple[int, int, TaskItem]] = []
    for item in items:
        for draw, seed in enumerate(seeds):
            variants.append((draw, seed, text_baseline(item, config.text_baseline, seed=seed,
                                                        size=size)))
            variants += [(draw, seed, perturb(item, name, seed=seed, size=size,
                                              **config.options_for(name)))
                         for name in applicable(item, names)]
    return variants


def run_chunk(loaded: Any, items: Sequence[TaskItem], names: Sequence[str],
              config: InterferenceConfig, size: tuple[int, int],
              candidates: Sequence[str]) -> dict[str, Any]:
    """Capture one chunk: each item clean and under each perturbation that fits it.

    Once per perturbation draw, in batches of at most ``config.batch_size`` prompts (one
    batch per condition and image presence: some families cannot mix the two).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        items: The chunk's task items.
        names: The run's perturbations.
        config: The run's options.
        size: The size of image perturbations.
        candidates: The answers the lens scores (:func:`answer_candidates`).

    Returns:
        ``items.csv`` rows (item x draw x condition, in that order), ``layers.csv``
        rows and the `row layer head span` attention mass.
    """
    from modprobe.analysis import normalize_answer
    from modprobe.capture import capture
    from modprobe.perturb import get_perturbation

    drawn = condition_variants(items, names, config, size)
    variants = [variant for _, _, variant in drawn]
    # One batch per condition and image presence (some families cannot mix the two).
    groups: dict[tuple[str, bool], list[int]] = {}
    for row, variant in enumerate(variants):
        groups.setdefault((variant.perturbation, variant.image is not None), []).append(row)
    records: list[dict[str, Any]] = [{} for _ in variants]
    lens_parts: list[pd.DataFrame] = []
    mass: list[np.ndarray | None] = [None] * len(variants)
    step = config.batch_size
    batches = [rows[i:i + step] for rows in groups.values() for i in range(0, len(rows), step)]
    for rows in batches:
        batch = [variants[r] for r in rows]
        cap = capture(loaded, [v.prompt() for v in batch], candidates=list(candidates),
                      top_k=config.top_k, attention=config.attention).cpu()
        frames = cap.to_frames()
        final = frames.final
        for j, row in enumerate(rows):
            v = variants[row]
            token = str(final["top1_token"].iloc[j])
            answer = normalize_answer(token) or f"<id:{int(final['top1_id'].iloc[j])}>"
            category = v.read(token, _first_token_aliases(v, loaded.tokenizer)
                              if v.format == "choice" else None)
            records[row] = {
                "id": v.id, "perturbation": v.perturbation, "draw": drawn[row][0],
                "seed": drawn[row][1], "relevant": v.relevant,
                "modality": get_perturbation(v.perturbation).modality
                if v.perturbation != "clean" else "", "task": v.task, "format": v.format,
                "cluster": v.cluster, "answer": answer, "category": category,
                "gold": v.gold(), "correct": category == v.gold(),
                "p_top1": float(final["top1_prob"].iloc[j]),
                "entropy": float(final["entropy"].iloc[j])}
            if cap.attention_mass is not None:
                mass[row] = cap.attention_mass[j].numpy().astype(np.float32)
        lens = frames.lens
        lens.insert(0, "draw", [drawn[rows[r]][0] for r in lens["row"]])
        lens.insert(0, "perturbation", [variants[rows[r]].perturbation for r in lens["row"]])
        lens.insert(0, "id", [variants[rows[r]].id for r in lens["row"]])
        lens["_order"] = [rows[r] for r in lens["row"]]
        lens_parts.append(lens.drop(columns=["row"]))
    layers = pd.concat(lens_parts, ignore_index=True).sort_values(["_order", "layer"])
    tables: dict[str, Any] = {"items.csv": pd.DataFrame(records),
                              "layers.csv": layers.drop(columns=["_order"]).reset_index(drop=True)}
    if config.attention:
        tables["attention_mass.npy"] = np.stack(mass)  # type: ignore[arg-type]
    return tables
