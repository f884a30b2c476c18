"""The study's causal chunk files: attention knockout and activation patching per layer.

For every item of a chunk, on its multimodal (conflict) prompt:

- ``knockout.csv``: the answer position's attention to the image span, then to the
  context span, blocked at one decoder layer at a time; one row per item x span x
  layer: ``id, span, layer, d_clean, d_knocked, answer_clean, answer_knocked, flipped``
  where ``d = logit(text answer) - logit(vision answer)`` and answers are the top
  candidate.
- ``patching.csv``: the residual stream at one layer patched between the multimodal run
  and the vision-only or text-only run, both ways, at the answer position and at the
  span both runs share (the image for vision-only, the description for text-only); one
  row per item x direction x site x layer: ``id, source, target, site, layer, d_target,
  d_source, d_patched, restored`` (share of ``d_source - d_target`` the patch restores).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

#: The chunk files a ``--causal`` run adds.
CAUSAL_TABLES = ("knockout.csv", "patching.csv")
#: Spans knocked out, in order.
KNOCKOUT_SPANS = ("image", "context")
#: (source condition, target condition, sites) patched.
PATCH_PAIRS = (("vision", "multi", ("answer", "image")), ("text", "multi", ("answer", "context")),
               ("multi", "vision", ("answer", "image")), ("multi", "text", ("answer", "context")))


def _pair_index(candidates: Sequence[str], items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`item` candidate index of each item's text answer and vision answer."""
    where = {c: i for i, c in enumerate(candidates)}
    return (np.array([where[it.answer_text] for it in items]),
            np.array([where[it.answer_vision] for it in items]))


def _diff(logits: torch.Tensor, ids: list[int], text: np.ndarray, vision: np.ndarray) -> np.ndarray:
    cand = logits[:, ids].double().cpu().numpy()
    rows = np.arange(cand.shape[0])
    return cand[rows, text] - cand[rows, vision]


def knockout_frame(loaded: Any, prompts: Sequence[Any], items: Sequence[Any],
                   candidates: Sequence[str]) -> pd.DataFrame:
    """``knockout.csv`` rows of one chunk (see the module docstring).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        prompts: The chunk's multimodal (conflict) prompts, one per item.
        items: The chunk's items (their text and vision answers).
        candidates: The run's candidate answers; every item's two answers are among them.

    Returns:
        One row per item x span x layer.
    """
    from modprobe.capture.candidates import resolve_candidates
    from modprobe.capture.interventions import clean_logits, knockout

    batch = loaded.encode(list(prompts))
    spans = loaded.spans(batch)
    vocab = int(loaded.adapter.lm_head(loaded.module).weight.shape[0])
    ids = list(resolve_candidates(list(candidates), loaded.tokenizer, vocab).ids)
    text, vision = _pair_index(candidates, items)
    labels = np.asarray(candidates, dtype=object)
    with torch.no_grad():
        clean = clean_logits(loaded, batch, spans.answer_positions())
    d_clean = _diff(clean, ids, text, vision)
    top_clean = labels[clean[:, ids].argmax(-1).cpu().numpy()]
    frames = []
    for span in KNOCKOUT_SPANS:
        present = spans.mask(span).any(dim=1)
        if not bool(present.all()):
            continue  # a prompt without the span (the study's multi prompts have both)
        for layer in range(loaded.adapter.num_layers(loaded.module)):
            out = knockout(loaded, batch, span=span, layers=[layer], candidates=list(candidates),
                           clean=clean)
            top = labels[out.knocked_logits[:, ids].argmax(-1).cpu().numpy()]
            frames.append(pd.DataFrame({
                "id": [it.id for it in items], "span": span, "layer": layer,
                "d_clean": d_clean, "d_knocked": _diff(out.knocked_logits, ids, text, vision),
                "answer_clean": top_clean, "answer_knocked": top, "flipped": top != top_clean}))
    return pd.concat(frames, ignore_index=True)


def patching_frame(loaded: Any, prompts: dict[str, Sequence[Any]], items: Sequence[Any],
                   candidates: Sequence[str]) -> pd.DataFrame:
    """``patching.csv`` rows of one chunk; ``prompts`` maps a condition to its prompts.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        prompts: The chunk's prompts by condition (``vision``, ``text``, ``multi``).
        items: The chunk's items.
        candidates: The run's candidate answers.

    Returns:
        One row per item x direction x site x layer.
    """
    from modprobe.capture.candidates import resolve_candidates
    from modprobe.capture.interventions import clean_logits, patch

    vocab = int(loaded.adapter.lm_head(loaded.module).weight.shape[0])
    ids = list(resolve_candidates(list(candidates), loaded.tokenizer, vocab).ids)
    text, vision = _pair_index(candidates, items)
    batches = {c: loaded.encode(list(p)) for c, p in prompts.items()}
    d_of = {}
    with torch.no_grad():
        for condition, batch in batches.items():
            logits = clean_logits(loaded, batch, loaded.spans(batch).answer_positions())
            d_of[condition] = _diff(logits, ids, text, vision)
    layers = range(loaded.adapter.num_layers(loaded.module))
    frames = []
    for source, target, sites in PATCH_PAIRS:
        for site in sites:
            out = patch(loaded, batches[target], batches[source], layers=layers, site=site)
            for layer, logits in out.items():
                d_patched = _diff(logits, ids, text, vision)
                gap = d_of[source] - d_of[target]
                with np.errstate(divide="ignore", invalid="ignore"):
                    restored = np.where(np.abs(gap) > 1e-6, (d_patched - d_of[target]) / gap,
                                        np.nan)
                frames.append(pd.DataFrame({
                    "id": [it.id for it in items], "source": source, "target": target,
                    "site": site, "layer": layer, "d_target": d_of[target],
                    "d_source": d_of[source], "d_patched": d_patched, "restored": restored}))
    return pd.concat(frames, ignore_index=True)


def causal_chunk_files(loaded: Any, prompts: dict[str, Sequence[Any]], items: Sequence[Any],
                       candidates: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The ``--causal`` chunk files of one chunk of conflict items.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        prompts: The chunk's prompts by condition.
        items: The chunk's items.
        candidates: The run's candidate answers.

    Returns:
        ``knockout.csv`` and ``patching.csv`` (:func:`knockout_frame`,
        :func:`patching_frame`).
    """
    return {"knockout.csv": knockout_frame(loaded, prompts["multi"], items, candidates),
            "patching.csv": patching_frame(loaded, prompts, items, candidates)}


def tuned_lens_frame(cap: Any, condition: str, ids: Sequence[str]) -> pd.DataFrame:
    """A capture's tuned lens as a ``layers``-shaped table (``layers_tuned.csv`` rows).

    Args:
        cap: A :class:`~modprobe.capture.Capture` with the tuned lens (``lens="tuned"``).
        condition: The condition of every row.
        ids: The item ids, one per row of the capture.

    Returns:
        The tuned lens's rows, with ``id`` and ``condition`` first.
    """
    from dataclasses import replace

    tuned = replace(cap, lens_entropy=cap.tuned_entropy, lens_topk_ids=cap.tuned_topk_ids,
                    lens_topk_probs=cap.tuned_topk_probs,
                    lens_candidate_logits=cap.tuned_candidate_logits,
                    lens_candidate_probs=cap.tuned_candidate_probs, lens_logits=None,
                    attention_mass=None)
    lens = tuned.to_frames().lens
    lens.insert(0, "condition", condition)
    lens.insert(0, "id", [ids[r] for r in lens["row"]])
    return lens.drop(columns=["row"])


def analyze_causal_and_tuned(out: Any, tables: dict[str, Any], items: pd.DataFrame,
                             mass: np.ndarray, analysis: Any, model_name: str,
                             summary: dict[str, Any], figures: list[Any],
                             fmt: str = "parquet") -> None:
    """Add the causal tables' and the tuned lens's readings to a run's summary and figures.

    Writes ``knockout_by_layer`` and ``patching_by_layer`` tables, ``figures/causal.png``,
    and under ``--lens tuned`` a second analysis on the tuned lens in ``tuned/``; appends
    their lines to ``summary.json``.

    Args:
        out: The folder the run's analysis is written to.
        tables: The run's gathered tables by chunk file name.
        items: The items table.
        mass: `item condition layer head span` attention mass.
        analysis: The analysis options (bootstrap, seed, figures...).
        model_name: The model's name in tables and legends.
        summary: The run's summary, updated in place and written again.
        figures: The run's figure paths, extended in place.
        fmt: ``"parquet"`` or ``"csv"``.
    """
    from pathlib import Path

    from modprobe.analysis.causal import (
        decision_layer,
        knockout_by_layer,
        patching_by_layer,
        plot_causal,
    )
    from modprobe.analysis.following.report import cluster_column
    from modprobe.io import json_ready, table_path, write_json, write_table
    from modprobe.study.report import analyze_run

    out = Path(out)
    cluster, _ = cluster_column(items)
    clusters = dict(zip(items["id"], items[cluster])) if cluster else None
    if clusters is not None and len(set(clusters.values())) < 2:
        clusters = None  # one cluster: resample items, as the following analysis does
    lines = list(summary.get("lines", []))
    if "knockout.csv" in tables:
        is_conflict = (items["group"] == "conflict") if "group" in items else \
            (items["answer_text"] != items["answer_vision"])
        conflicts = set(items.loc[is_conflict, "id"])
        knock = tables["knockout.csv"]
        knock = knock[knock["id"].isin(conflicts)]
        patched = tables["patching.csv"]
        patched = patched[patched["id"].isin(conflicts)]
        by_layer = knockout_by_layer(knock, clusters, analysis.n_bootstrap, analysis.seed)
        shares = patching_by_layer(patched, clusters, analysis.n_bootstrap, analysis.seed)
        write_table(table_path(out, "knockout_by_layer", fmt), by_layer)
        write_table(table_path(out, "patching_by_layer", fmt), shares)
        causal: dict[str, Any] = {"knockout_by_layer": by_layer.to_dict(orient="records"),
                                  "patching_by_layer": shares.to_dict(orient="records")}
        for span in ("image", "context"):
            found = decision_layer(knock, span, clusters, analysis.n_bootstrap, analysis.seed)
            if found is not None:
                lines.append(found.line())
                causal[f"decision_layer_{span}"] = vars(found)
        summary["causal"] = causal
        if analysis.figures:
            plot_causal(by_layer, shares, out / "figures" / "causal.png")
            figures.append(out / "figures" / "causal.png")
    if "layers_tuned.csv" in tables:
        tuned_summary, tuned_figures = analyze_run(
            out / "tuned", items, tables["layers_tuned.csv"], mass, analysis,
            model_name=f"{model_name} (tuned lens)", num_layers=mass.shape[2])
        osc = [f"tuned lens {line}" for line in tuned_summary.get("lines", [])
               if line.startswith("oscillation")]
        lines += osc
        summary["tuned_lens"] = {"oscillation": tuned_summary.get("oscillation")}
        figures += tuned_figures
    summary["lines"] = lines
    write_json(out / "summary.json", json_ready(summary))


def causal_tables(config: Any) -> tuple[str, ...]:
    """The chunk files a study run adds to the capture's: the tuned lens's, the causal ones.

    Args:
        config: The run's :class:`~modprobe.study.StudyConfig`.

    Returns:
        The extra chunk file names, in the order they are gathered.
    """
    return (*(("layers_tuned.csv",) if config.lens == "tuned" else ()),
            *(CAUSAL_TABLES if config.causal else ()))


def study_translators(config: Any, loaded: Any) -> Any:
    """A study run's tuned-lens translators, checked against the model.

    Args:
        config: The run's :class:`~modprobe.study.StudyConfig` (``lens``, ``translators``).
        loaded: The loaded model the translators must have been trained on.

    Returns:
        The :class:`~modprobe.capture.tuned.Translators` of ``config.translators``, else
        of the model folder's ``tuned_lens.safetensors``; None for the logit lens.
    """
    if config.lens != "tuned":
        return None
    from pathlib import Path

    from modprobe.capture.tuned import TRANSLATORS_FILE, Translators
    from modprobe.study.runfolder import StudyError

    path = config.translators
    if path is None:
        folder = Path(str(loaded.source))
        path = str(folder / TRANSLATORS_FILE) if folder.is_dir() else None
    if path is None:
        raise StudyError("--lens tuned needs --translators FILE for a model that is not a local "
                         "folder (train them with modprobe.capture.tuned.train_translators)")
    return Translators.load(path, loaded)
