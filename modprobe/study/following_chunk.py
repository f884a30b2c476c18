"""One chunk of a following study: every item under the three conditions, captured.

:func:`run_chunk` captures a chunk's items vision-only, text-only and multi (logit lens,
attention mass and the candidates' final scores) and returns its tables;
:func:`chunk_files` adds the causal and tuned-lens files a run asks for and names the
files in the order they are written (the marker, ``items.csv``, last).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from modprobe.adapters import CONDITIONS, Prompt
from modprobe.analysis import normalize_answer


def _candidate_entropy(logits: torch.Tensor) -> np.ndarray:
    """Entropy (nats) of the softmax restricted to the candidate answers (`... cand`)."""
    from modprobe.analysis.following.uncertainty import entropy

    return np.asarray(entropy(logits.double().numpy(), axis=-1))


#: Separator of the allowed text answers in the ``answer_text_options`` column.
OPTIONS_SEPARATOR = "|"


def _options_cell(item: Any) -> str:
    """The colors the item's description allows, ``"|"``-joined.

    ``answer_text`` alone when the dataset lists no ``answer_text_options``. A text-only
    answer is correct when it is any of them: a hedged description ("red or green")
    allows both.
    """
    options = item.extra.get("answer_text_options") or [item.answer_text]
    return OPTIONS_SEPARATOR.join(str(o) for o in options)


def candidate_table(ids: Sequence[str], condition: str, labels: Sequence[str],
                    logits: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """Final candidate scores as a tidy table (``candidates.csv``).

    Args:
        ids: Item ids, `item`.
        condition: The condition of every row.
        labels: Candidate labels, `cand`.
        logits: `item cand` the model's own logits of the candidates.
        probs: `item cand` their full-vocabulary probabilities.

    Returns:
        Columns ``id, condition, candidate, logit, prob`` (items outer, candidates inner).
    """
    n, k = len(ids), len(labels)
    return pd.DataFrame({"id": np.repeat(np.asarray(ids, dtype=object), k),
                         "condition": condition,
                         "candidate": np.tile(np.asarray(labels, dtype=object), n),
                         "logit": np.asarray(logits, dtype=np.float64).reshape(-1),
                         "prob": np.asarray(probs, dtype=np.float64).reshape(-1)})


def run_chunk(loaded: Any, dataset: Any, items: Sequence[Any], candidates: list[str],
              top_k: int, translators: Any = None,
              ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Capture one chunk of items under the three conditions.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        dataset: The conflict dataset (builds each item's prompts).
        items: The chunk's items.
        candidates: The candidate answers the lens scores.
        top_k: Lens top tokens kept per layer.
        translators: The tuned lens's translators (None: logit lens only).

    Returns:
        ``(items, layers, attention mass, candidates, tuned layers)``: one items row per
        item (answers, entropies, correctness per condition), the lens rows, the `item
        condition layer head span` mass, the candidates' final scores, and the tuned lens's
        rows (None without translators).
    """
    from modprobe.capture import capture

    parts = [dataset.prompts(item) for item in items]
    item_rows: list[dict[str, Any]] = [
        {"id": it.id, "group": it.group, "d_v": it.d_v, "d_t": it.d_t, "shape": it.shape,
         "answer_vision": it.answer_vision, "answer_text": it.answer_text,
         "answer_text_options": _options_cell(it),
         "cluster": it.extra.get("cluster")} for it in items]
    layer_frames: list[pd.DataFrame] = []
    candidate_frames: list[pd.DataFrame] = []
    masses: list[np.ndarray] = []
    tuned_frames: list[pd.DataFrame] = []
    for condition in CONDITIONS:
        prompts = [Prompt.for_condition(condition, *p[condition]) for p in parts]
        cap = capture(loaded, prompts, candidates=candidates, top_k=top_k,
                      lens="tuned" if translators is not None else True,
                      translators=translators).cpu()
        if translators is not None:
            from modprobe.study.causal import tuned_lens_frame

            tuned_frames.append(tuned_lens_frame(cap, condition, [it.id for it in items]))
        frames = cap.to_frames()  # decodes every token once, with the capture's decoder
        final = frames.final
        # An answer that normalises to nothing (a whitespace or empty token) keeps its
        # token id, so it still differs from every real answer and survives a CSV round trip.
        answers = [normalize_answer(token) or f"<id:{tid}>"
                   for token, tid in zip(final["top1_token"], final["top1_id"])]
        cand_entropy = _candidate_entropy(cap.final_candidate_logits)
        for i, row in enumerate(item_rows):
            row[f"y_{condition}"] = answers[i]
            row[f"h_{condition}"] = float(final["entropy"].iloc[i])
            row[f"hc_{condition}"] = float(cand_entropy[i])
            row[f"p_{condition}"] = float(final["top1_prob"].iloc[i])
        lens = frames.lens
        lens.insert(0, "condition", condition)
        lens.insert(0, "id", [items[r].id for r in lens["row"]])
        layer_frames.append(lens.drop(columns=["row"]))
        masses.append(cap.attention_mass.numpy().astype(np.float32))
        candidate_frames.append(candidate_table(
            [it.id for it in items], condition, list(cap.candidates.labels),
            cap.final_candidate_logits.numpy(), cap.final_candidate_probs.numpy()))
    items_frame = pd.DataFrame(item_rows)
    items_frame["correct_vision"] = [
        normalize_answer(y) == normalize_answer(a)
        for y, a in zip(items_frame["y_vision"], items_frame["answer_vision"])]
    items_frame["correct_text"] = [
        normalize_answer(y) in {normalize_answer(o) for o in options.split(OPTIONS_SEPARATOR)}
        for y, options in zip(items_frame["y_text"], items_frame["answer_text_options"])]
    return (items_frame, pd.concat(layer_frames, ignore_index=True), np.stack(masses, axis=1),
            pd.concat(candidate_frames, ignore_index=True),
            pd.concat(tuned_frames, ignore_index=True) if tuned_frames else None)


def chunk_files(loaded: Any, dataset: Any, items: Sequence[Any], candidates: list[str],
                top_k: int, translators: Any = None, causal: bool = False) -> dict[str, Any]:
    """One chunk's files, the marker (``items.csv``) last.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        dataset: The conflict dataset.
        items: The chunk's items.
        candidates: The candidate answers.
        top_k: Lens top tokens kept per layer.
        translators: The tuned lens's translators (None: logit lens only).
        causal: Add the knockout and patching files.

    Returns:
        Frames and arrays by file name, in the order :func:`~modprobe.study.runfolder.write_chunk`
        writes them.
    """
    items_frame, layers_frame, mass, cand_frame, tuned = run_chunk(
        loaded, dataset, items, candidates, top_k, translators)
    files: dict[str, Any] = {"attention_mass.npy": mass, "layers.csv": layers_frame,
                             "candidates.csv": cand_frame}
    if tuned is not None:
        files["layers_tuned.csv"] = tuned
    if causal:
        from modprobe.study.causal import causal_chunk_files

        parts = [dataset.prompts(item) for item in items]
        prompts = {c: [Prompt.for_condition(c, *p[c]) for p in parts] for c in CONDITIONS}
        files.update(causal_chunk_files(loaded, prompts, items, candidates))
    files["items.csv"] = items_frame
    return files
