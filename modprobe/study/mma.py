"""The MMA study: every clip question under each MMA-Bench condition, in one run folder.

For every clip (``modprobe.data.clips``) and prompt type (the visual or the audio
class), the model answers the aligned clip and each condition of
:mod:`modprobe.perturb.av` that fits (several draws of the random ones); one capture per
input gives the answer (the option with the highest logit) and the attention mass the
answer position gives each span, layer by layer. Chunks, resume, fingerprints and the
manifest are the shared run driver's (:mod:`modprobe.study.driver`).
``modprobe mma`` (:mod:`modprobe.commands.mma`) is its command line; ``modprobe.load_run(RUN)``
loads a finished run back.

Run folder::

    RUN/manifest.json        model, data, conditions, draws, seed, fingerprints
    RUN/data/                the generated clips (when no --data was given)
    RUN/items.parquet        one row per item x condition x draw: answer, gold, correct
    RUN/attention.parquet    head-averaged mass per item x condition x draw x layer x span
    RUN/accuracy.parquet     accuracy per condition and prompt type, with intervals
    RUN/contrast.parquet     Cohen's d per condition x layer x span, with intervals
    (``.csv`` instead with ``--table-format csv``)
    RUN/summary.json         the printed lines and both tables
    RUN/figures/             d_per_layer.png, attention_mass.png
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.data.clips_items import ClipItem
from modprobe.stats import DEFAULT_RESAMPLES
from modprobe.study.driver import COMMON_ANALYSIS, AnalysisOptions, RunDriver, RunInputs, RunSpec
from modprobe.study.runfolder import StudyError, data_fingerprint, model_fingerprint

_RESUME_KEYS = ("model", "data", "conditions", "draws", "letters", "visual", "batch_size",
                "limit", "dtype", "data_seed", "clips", "table_format")
TABLES = ("attention.csv", "items.csv")
#: Conditions whose result depends on the draw (the others run once).
RANDOM_CONDITIONS = ("misaligned", "caption", "long_text")


@dataclass
class MmaConfig:
    """Options of one MMA run (written to the manifest).

    Attributes:
        model: Alias, hub id or folder.
        data: Clip folder (``docs/mma.md``); None: generate ``clips`` synthetic clips into
            ``out/data``.
        out: Run folder.
        conditions: MMA conditions (None: all of :data:`modprobe.perturb.av.AV_CONDITIONS`).
        draws: Perturbation draws of the random conditions (misaligned, caption,
            long_text).
        letters: Length of the long irrelevant text.
        visual: ``"video"`` (needs the video extra) or ``"image"`` (the middle frame).
        batch_size: Items per chunk.
        limit: Only the first ``limit`` clips.
        clips: Clips to generate without ``data``.
        device, dtype: Where and how the model runs.
        seed: Seed of the bootstrap (a resumed or re-analysed run may change it).
        data_seed: Seed of the conditions' draws and the generated clips.
        table_format: ``parquet`` (default) or ``csv``: the format of the run's tables.
        n_bootstrap, figures, resume: As in the other runners.
    """

    model: str
    data: str | None
    out: str
    conditions: list[str] | None = None
    draws: int = 3
    letters: int = 10_000
    visual: str = "video"
    batch_size: int = 8
    limit: int | None = None
    clips: int = 16
    device: str | None = None
    dtype: str = "auto"
    seed: int = 0
    data_seed: int = 0
    table_format: str = "parquet"
    n_bootstrap: int = DEFAULT_RESAMPLES
    figures: bool = True
    resume: bool = False


@dataclass
class MmaResult:
    """A finished run (also on disk)."""

    out: Path
    accuracy: pd.DataFrame
    contrast: pd.DataFrame
    summary: dict[str, Any]
    figures: list[Path] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """The lines the run printed (accuracy per condition and prompt, d per span)."""
        return list(self.summary.get("lines", []))


def _check_config(config: MmaConfig) -> list[str]:
    """Refuse bad options before anything is written; returns the condition names."""
    from modprobe.adapters.media import require_video
    from modprobe.perturb.av import AV_CONDITIONS

    names = list(config.conditions or AV_CONDITIONS)
    unknown = [n for n in names if n not in AV_CONDITIONS]
    if unknown:
        raise StudyError(f"unknown condition {unknown[0]!r} (--conditions); known: "
                         f"{', '.join(AV_CONDITIONS)}")
    if config.visual not in ("video", "image"):
        raise StudyError(f"--visual must be video or image, got {config.visual!r}")
    if config.visual == "video":
        require_video()
    if config.data is not None and not Path(config.data).is_dir():
        raise StudyError(f"--data {config.data}: no such clip folder")
    return names


def run_mma(config: MmaConfig, progress: bool = True) -> MmaResult:
    """Run (or resume) an MMA study and write its run folder.

    Args:
        config: The options.
        progress: Show a progress bar.

    Returns:
        The :class:`MmaResult`.

    Raises:
        StudyError, DatasetError, MediaError: bad options or inputs (before anything is
            written), or a disk or memory failure mid-run (finished chunks are kept).
    """
    from modprobe.data.clips import generate_clips, load_clips
    from modprobe.data.clips_items import clip_items
    from modprobe.loading import load

    names = _check_config(config)
    analysis = AnalysisOptions.of(config)
    options = {k: v for k, v in asdict(config).items() if k not in ("resume", "out")}
    options["conditions"] = names
    driver = RunDriver(RunSpec(
        kind="mma", out=Path(config.out), resume=config.resume, options=options,
        resume_keys=_RESUME_KEYS, batch_size=config.batch_size, tables=TABLES,
        generated=("data",) if config.data is None else (), progress_label="modprobe.mma",
        table_format=config.table_format))
    driver.check_folder()
    loaded = load(config.model, device=config.device, dtype=config.dtype)

    def load_inputs() -> RunInputs:
        data = Path(config.data) if config.data is not None else driver.out / "data"
        if config.data is None and not (data / "clips.jsonl").is_file():
            generate_clips(data, n=config.clips, seed=config.data_seed)
        clips = load_clips(data)[: config.limit] if config.limit else load_clips(data)
        items = clip_items(data, clips)
        check_clip_inputs(loaded, items, names, config)
        files = ["clips.jsonl"] + [p for c in clips for p in _clip_files(data, c)]
        return RunInputs(
            data=data, items=items,
            fingerprints={"data": data_fingerprint(data, files),
                          "model": model_fingerprint(loaded.module)},
            manifest={"source": loaded.source, "family": loaded.adapter.family},
            extra={"pool": items})

    inputs = driver.prepare(load_inputs)
    pool = inputs.extra["pool"]
    gathered = driver.run_chunks(
        inputs.items, lambda chunk: run_chunk(loaded, chunk, names, config, pool),
        progress=progress).tables
    result = analyze_mma_run(driver.out, gathered["items.csv"], gathered["attention.csv"],
                             analysis.n_bootstrap, analysis.seed, analysis.figures,
                             analysis.table_format)
    driver.finish(analysis.record(COMMON_ANALYSIS))
    return result


def check_clip_inputs(loaded: Any, items: Sequence[ClipItem], names: Sequence[str],
                      config: MmaConfig) -> None:
    """Refuse clips the model cannot take, before the run folder is made.

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        items: The run's clip items.
        names: The run's conditions.
        config: The options (the long text's length).

    Raises:
        MediaError: a clip without a soundtrack under an audio question; a soundtrack at a
            sample rate the feature extractor does not take (or too long for it); a clip
            whose prompt (with the long text, when run) is longer than the model's
            context, saying how many seconds fit.
    """
    from modprobe.adapters.media import MediaError, check_audio

    for item in items:
        sound = item.video.audio
        if sound is None:
            if item.ask == "audio":
                raise MediaError(f"clip {item.cluster!r} has no soundtrack (no audio file "
                                 "and none in its video), but its audio question needs one; "
                                 "add an audio file to its line of clips.jsonl")
            continue
        check_audio(loaded.processor, sound, f"clip {item.cluster!r}")
    longest = max(items, key=lambda i: i.video.seconds)
    if "long_text" in names:
        from modprobe.perturb.av import long_text

        longest = long_text(longest, np.random.default_rng(0), letters=config.letters)
    tokens = int(loaded.encode([longest.prompt(config.visual)])["input_ids"].shape[1])
    limit = getattr(loaded.adapter.language_config(loaded.config), "max_position_embeddings",
                    None)
    if limit and tokens > limit:
        fits = longest.video.seconds * limit / tokens
        raise MediaError(f"clip {longest.cluster!r} ({longest.video.seconds:.1f} s) makes a "
                         f"prompt of {tokens} tokens, more than the model's {limit} "
                         f"positions: clips of this frame size fit in about {fits:.1f} s; "
                         "cut the clips (or lower --letters)")


def _clip_files(root: Path, clip: Any) -> list[str]:
    """The files of a clip, relative to the folder (a frame folder's frames)."""
    paths = [clip.video] if not (root / clip.video).is_dir() else [
        f"{clip.video}/{p.name}" for p in sorted((root / clip.video).glob("frame_*.png"))]
    return paths + ([clip.audio] if clip.audio else [])


def variants_of(item: ClipItem, names: Sequence[str], config: MmaConfig,
                pool: Sequence[ClipItem]) -> list[tuple[ClipItem, int]]:
    """``(item under a condition, draw)`` for every fitting condition and draw.

    Args:
        item: A clip item.
        names: The run's conditions (those that do not apply to the item are skipped).
        config: The options (draws, seed, long-text length).
        pool: Every item of the run, for conditions that borrow another clip.

    Returns:
        One entry per condition and draw (random conditions get ``config.draws`` draws).
    """
    from modprobe.perturb.av import applicable_conditions, av_condition

    out = []
    for name in names:
        if name not in applicable_conditions(item):
            continue
        for draw in range(config.draws if name in RANDOM_CONDITIONS else 1):
            options = {"letters": config.letters} if name == "long_text" else {}
            out.append((av_condition(item, name, seed=config.data_seed + draw, pool=pool,
                                     **options), draw))
    return out


def run_chunk(loaded: Any, items: Sequence[ClipItem], names: Sequence[str], config: MmaConfig,
              pool: Sequence[ClipItem]) -> dict[str, pd.DataFrame]:
    """Capture one chunk: its items under every condition, one batch per condition.

    Returns:
        ``items.csv`` (one row per variant) and ``attention.csv`` (head-averaged mass per
        variant, layer and span).

    Args:
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        items: The chunk's clip items.
        names: The run's conditions.
        config: The options.
        pool: Every item of the run (:func:`variants_of`).
    """
    from modprobe.capture import capture
    from modprobe.spans import SPAN_NAMES

    variants = [v for item in items for v in variants_of(item, names, config, pool)]
    records: list[dict[str, Any]] = []
    attention: list[dict[str, Any]] = []
    by_condition: dict[str, list[tuple[ClipItem, int]]] = {}
    for variant in variants:
        by_condition.setdefault(variant[0].condition, []).append(variant)
    for group in by_condition.values():
        options = list(dict.fromkeys(o for v, _ in group for o in v.options))
        cap = capture(loaded, [v.prompt(config.visual) for v, _ in group],
                      candidates=options).cpu()
        logits = cap.final_candidate_logits.numpy()
        mass = cap.attention_mass.mean(dim=2).numpy()  # batch layer span
        for j, (item, draw) in enumerate(group):
            own = [options.index(o) for o in item.options]
            answer = item.options[int(np.argmax(logits[j, own]))]
            key = {"item": item.id, "cluster": item.cluster, "ask": item.ask,
                   "condition": item.condition, "draw": draw}
            records.append({**key, "answer": answer, "gold": item.gold,
                            "correct": int(answer == item.gold)})
            for layer in range(mass.shape[1]):
                for s, span in enumerate(SPAN_NAMES):
                    attention.append({**key, "layer": layer, "span": span,
                                      "mass": float(mass[j, layer, s])})
    return {"items.csv": pd.DataFrame(records), "attention.csv": pd.DataFrame(attention)}


def analyze_mma_run(out: Path, items: pd.DataFrame, attention: pd.DataFrame,
                    n_bootstrap: int, seed: int, figures: bool,
                    table_format: str = "parquet") -> MmaResult:
    """Accuracy and attention contrast tables, summary and figures of a run's tables.

    Args:
        out: The folder to write into (the run folder or a re-analysis folder).
        items: The run's items table.
        attention: The run's attention table.
        n_bootstrap: Bootstrap replicates of the cluster intervals.
        seed: Seed of the bootstrap.
        figures: Draw the figures.
        table_format: ``"parquet"`` or ``"csv"``.

    Returns:
        The :class:`MmaResult`.
    """
    from modprobe.analysis.following.layer_plots import plot_attention_mass
    from modprobe.analysis.mma.measures import (
        accuracy_table,
        attention_contrast,
        mass_curves,
        plot_d_per_layer,
    )
    from modprobe.io import table_path, write_json, write_table

    accuracy = accuracy_table(items, n_bootstrap=n_bootstrap, seed=seed)
    # spans a condition never shows (no caption: no context) are left out of its curves
    used = attention[attention.groupby(["condition", "span"])["mass"].transform("max") > 0]
    contrast = attention_contrast(used, n_bootstrap=n_bootstrap, seed=seed)
    write_table(table_path(out, "accuracy", table_format), accuracy)
    write_table(table_path(out, "contrast", table_format), contrast)
    lines = [f"{r.condition} | {r.ask} prompt: accuracy={r.accuracy:.3f} "
             f"ci=[{r.low:.3f}, {r.high:.3f}] n={r.n} clips={r.n_clusters}"
             for r in accuracy.itertuples()]
    known = contrast.dropna(subset=["d"])
    top = known.loc[known["d"].abs().groupby([known["condition"], known["span"]]).idxmax()]
    lines += [f"{r.condition} | {r.span}: max |d| at layer {r.layer}: d={r.d:.2f} "
              f"ci=[{r.low:.2f}, {r.high:.2f}]" for r in top.itertuples()]
    summary = {"lines": lines, "accuracy": accuracy.to_dict("records"),
               "max_abs_d": top.to_dict("records")}
    write_json(out / "summary.json", summary)
    paths: list[Path] = []
    if figures:
        paths.append(out / "figures" / "d_per_layer.png")
        plot_d_per_layer(contrast, path=paths[-1])
        paths.append(out / "figures" / "attention_mass.png")
        plot_attention_mass(mass_curves(used), path=paths[-1])
    return MmaResult(out, accuracy, contrast, summary, paths)
