"""The modality-following study: capture every item under three conditions, then analyse.

For every item of a conflict dataset the model runs vision-only (image + question),
text-only (description + question) and multi (image + description + question), in
batches, with one capture each (logit lens + attention mass, ``modprobe.capture``). The
results go to a run folder, chunk by chunk, each file written atomically; an interrupted
run resumes from the last finished chunk and ends with the same tables as a run that was
never interrupted. ``python -m modprobe.layers`` is the command-line face of this module.

Run folder::

    RUN/manifest.json          model, data, seeds, versions, options
    RUN/chunks/NNNNN/          per-chunk results (items.csv written last = chunk done),
                               removed once the run is complete
    RUN/items.parquet          one row per item (answers, entropies, correctness; a
                               text-only answer is correct when it is any of the
                               item's answer_text_options)
    RUN/layers.parquet         one row per item x condition x layer (lens)
    RUN/candidates.parquet     one row per item x condition x candidate: the model's own
                               final logit and full-vocabulary probability of the answer
    RUN/attention_mass.npy     `item condition layer head span` float32 (spans: image,
                               video, audio, context = the description, text = the rest)
    RUN/attention.parquet      head-averaged mass: item, condition, layer, span, mass
    RUN/oscillation.parquet    one row per item: x, group, region, switch count
    RUN/summary.json           filter counts, TFR, both balance points with intervals,
                               goodness of fit, trend test, oscillation by region
    RUN/figures/*.png          following curve, dH_rel histogram, oscillation by region,
                               logit-difference heatmap, attention mass by layer

Tables are Parquet unless the run asks for CSV (``table_format="csv"``);
``modprobe.load_run(RUN)`` reads either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modprobe.adapters import CONDITIONS
from modprobe.io import table_path, write_table
from modprobe.spans import SPAN_NAMES
from modprobe.stats import DEFAULT_RESAMPLES
from modprobe.study.causal import causal_tables, study_translators
from modprobe.study.driver import AnalysisOptions, RunDriver, RunInputs, RunSpec, RunTables
from modprobe.study.following_chunk import (
    OPTIONS_SEPARATOR,
    candidate_table,
    chunk_files,
    run_chunk,
)
from modprobe.study.report import attention_table
from modprobe.study.runfolder import StudyError, data_fingerprint, model_fingerprint

#: Options that change the numbers: a resumed run must use the same values.
_RESUME_KEYS = ("model", "data", "groups", "batch_size", "limit", "candidates", "dtype", "top_k",
                "data_seed", "table_format", "causal", "lens", "translators")
#: What the resume keys added since meant in runs that predate them.
_RESUME_DEFAULTS = {"causal": False, "lens": "logit", "translators": None}
#: The chunk files gathered into the run's tables.
TABLES = ("items.csv", "layers.csv", "attention_mass.npy")

__all__ = ["OPTIONS_SEPARATOR", "TABLES", "StudyConfig", "StudyResult", "attention_table",
           "candidate_table", "chunk_files", "run_chunk", "run_study"]


@dataclass
class StudyConfig:
    """Options of one study run (written to the manifest).

    Attributes:
        model: Alias, hub id or folder of the model.
        data: Dataset folder (``modprobe.data`` schema); None: generate a color-conflict
            dataset into ``out/data`` (lowres variant for the organism, paper otherwise).
        out: Run folder.
        batch_size: Items per chunk; each chunk runs three batches (one per condition).
        limit: Only the first ``limit`` items (None: all).
        candidates: Candidate answers scored at every layer (None: every answer in the data).
        device: Torch device (None: CUDA when available).
        device_map: Shard the model over devices instead (``auto`` or a JSON object /
            dict of module -> device; :func:`modprobe.load`); not with ``device``.
        dtype: Model dtype (``auto``, ``float32``, ``bfloat16``, ``float16``).
        top_k: Top tokens kept per layer.
        seed: Seed of the bootstrap in the analysis (a resumed or re-analysed run may
            change it).
        n_bootstrap: Bootstrap replicates for intervals.
        resume: Continue an interrupted run in ``out``.
        figures: Write the figures.
        groups: Groups to generate when ``data`` is None (default 12 organism, 4 others).
        axis: Uncertainty axis of the analysis: ``rel`` (dH_rel) or ``abs`` (H_t - H_v).
        entropy_floor: Floor on entropies before the axis is computed (nats); tames
            saturated dH_rel values of very confident models (docs/analyses.md).
        balance_estimate: Balance point reported last and used for the oscillation
            regions: ``auto`` (default: the recommended one), or ``logistic`` (the
            paper's display) or ``monotone`` to force one.
        all_conflicts: Keep every conflict (skip the paper's correctness filter).
        data_seed: Seed of the generated dataset (when ``data`` is None).
        table_format: ``parquet`` (default) or ``csv``: the format of the run's tables.
        causal: Also run attention knockout and activation patching on every item, one
            layer at a time (``knockout`` and ``patching`` tables, docs/causal.md).
        lens: ``logit`` or ``tuned``: ``tuned`` also captures the tuned lens
            (``layers_tuned`` table) and reruns the oscillation analysis on it (``tuned/``).
        translators: Translators file for ``lens="tuned"`` (default: the model folder's
            ``tuned_lens.safetensors``).
        remote: ``None`` (run here), ``"ndif"`` (every trace runs on NDIF: a hub id it
            hosts, docs/scale.md) or ``"local"`` (nnsight's local simulation of a remote
            run, which serialises each trace as NDIF would; weights loaded here).
    """

    model: str
    data: str | None
    out: str
    batch_size: int = 8
    limit: int | None = None
    candidates: list[str] | None = None
    device: str | None = None
    device_map: str | dict[str, Any] | None = None
    dtype: str = "auto"
    top_k: int = 5
    seed: int = 0
    n_bootstrap: int = DEFAULT_RESAMPLES
    resume: bool = False
    figures: bool = True
    groups: int | None = None
    axis: str = "rel"
    entropy_floor: float = 0.0
    balance_estimate: str = "auto"
    all_conflicts: bool = False
    data_seed: int = 0
    table_format: str = "parquet"
    causal: bool = False
    lens: str = "logit"
    translators: str | None = None
    remote: str | None = None


@dataclass
class StudyResult:
    """What a finished run produced (also on disk in the run folder).

    Attributes:
        out: The run folder.
        items: One row per item.
        layers: One row per item x condition x layer.
        attention_mass: `item condition layer head span`.
        summary: The printed summary as a dict (also ``summary.json``).
        figures: Paths of the written figures.
    """

    out: Path
    items: pd.DataFrame
    layers: pd.DataFrame
    attention_mass: np.ndarray
    summary: dict[str, Any]
    figures: list[Path] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """The lines the run printed (filter counts, TFR, balance points, oscillation)."""
        return list(self.summary.get("lines", []))


def _check_config(config: StudyConfig) -> None:
    """Refuse options that cannot give a meaningful run, naming the CLI option."""
    from modprobe.checks import check_dtype

    def _integer(option: str, value: Any, least: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            what = "a positive integer" if least == 1 else f"an integer >= {least}"
            raise StudyError(f"{option} must be {what}, got {value!r}")

    _integer("--batch-size", config.batch_size, 1)
    _integer("--top-k", config.top_k, 1)
    _integer("--seed", config.seed, 0)
    _integer("--data-seed", config.data_seed, 0)
    if config.limit is not None:
        _integer("--limit", config.limit, 1)
    if config.groups is not None:
        _integer("--groups", config.groups, 1)
        if config.data is not None:
            raise StudyError("--groups sets the size of the generated dataset, so it applies "
                             "only without --data; drop one of them")
    AnalysisOptions.of(config)  # --bootstrap, --axis, --entropy-floor, --estimate
    check_dtype(config.dtype)
    if config.lens not in ("logit", "tuned"):
        raise StudyError(f"--lens must be logit or tuned, got {config.lens!r}")
    if config.translators is not None and config.lens != "tuned":
        raise StudyError("--translators applies only with --lens tuned; add --lens tuned or "
                         "drop --translators")
    if config.candidates is not None:
        if not config.candidates or not all(isinstance(c, str) and c.strip()
                                            for c in config.candidates):
            raise StudyError(f"--candidates must be non-empty answers separated by commas, "
                             f"got {config.candidates!r}")
        if len(set(config.candidates)) != len(config.candidates):
            raise StudyError(f"--candidates lists an answer twice: {config.candidates!r}")


def _generate_data(config: StudyConfig, out: Path) -> Path:
    """Generate the default dataset into ``out/data`` (kept on resume: same seed, same bytes)."""
    from modprobe.data import generate_colors

    data = out / "data"
    if not (data / "items.jsonl").is_file():
        organism = config.model == "organism"
        generate_colors(data, groups=config.groups or (12 if organism else 4),
                        seed=config.data_seed,
                        variant="lowres" if organism else "paper", overwrite=True)
    return data



def run_study(config: StudyConfig, progress: bool = True,
              on_chunk: Callable[[int], None] | None = None) -> StudyResult | None:
    """Run (or resume) a study and write its run folder.

    Args:
        config: The options.
        progress: Show a tqdm bar with items per second.
        on_chunk: Called with the chunk index after each chunk is written (for tests and
            notebooks that watch a run).

    Returns:
        The :class:`StudyResult`; None on the ranks other than 0 of a data-parallel run
        (``torchrun``/``accelerate launch``: every rank captures its shard of the chunks,
        rank 0 gathers and analyses; :mod:`modprobe.study.distributed`).

    Raises:
        StudyError: an option is out of range, the run folder exists (without
            ``resume``), cannot be written, or does not match (options, data or model
            changed); a disk or memory failure mid-run (finished chunks are kept).
        DatasetError: the dataset does not validate (every line, field and image).
        CandidateError: a candidate answer is not in the tokenizer's vocabulary.
        ModprobeError: an unknown dtype or a device this machine does not have.

    Nothing is written before every check passed; a refused new run leaves no folder.
    """
    from modprobe.data import load_dataset
    from modprobe.loading import resolve_source
    from modprobe.study.distributed import current_world

    # Check everything the user gave before writing anything: a typo must not leave a run
    # folder, and a refused resume must not touch the run.
    _check_config(config)
    analysis = AnalysisOptions.of(config)  # checked by _check_config
    resolve_source(config.model)
    world = current_world()
    placement = world.placement(config.device, config.device_map)
    driver = _driver(config, world)
    _check_spans(driver.check_folder(), driver.out)
    given = load_dataset(config.data) if config.data is not None else None
    loaded, translators, vocab_size = _load_model(config, placement)
    inputs = driver.prepare(lambda: _load_inputs(config, driver.out, given, loaded,
                                                 vocab_size))
    dataset, candidates = inputs.extra["dataset"], inputs.extra["candidates"]
    gathered = driver.run_chunks(
        inputs.items, lambda chunk: chunk_files(loaded, dataset, chunk, candidates,
                                                config.top_k, translators, config.causal),
        progress=progress, on_chunk=on_chunk)
    if gathered is None:  # another rank than 0: its chunks are written, rank 0 analyses
        return None
    return _analyse(config, analysis, driver, gathered, translators is not None)


def _driver(config: StudyConfig, world: Any) -> RunDriver:
    """The run driver of ``config``: its folder, options, resume rules and tables.

    Args:
        config: The options.
        world: The data-parallel world (:func:`modprobe.study.distributed.current_world`).

    Returns:
        A :class:`~modprobe.study.driver.RunDriver` that has not touched the folder yet.
    """
    return RunDriver(RunSpec(
        kind="following", out=Path(config.out), resume=config.resume,
        options={k: v for k, v in asdict(config).items() if k not in ("resume", "out")},
        resume_keys=_RESUME_KEYS, resume_defaults=_RESUME_DEFAULTS, batch_size=config.batch_size,
        tables=(*TABLES, *causal_tables(config)),
        optional_tables=("candidates.csv",), generated=("data",) if config.data is None else (),
        progress_label="modprobe.layers", table_format=config.table_format), world)


def _load_model(config: StudyConfig, placement: dict[str, Any]) -> tuple[Any, Any, int]:
    """Load the model (here or remotely) and check the user's candidates against it.

    Args:
        config: The options.
        placement: ``device`` or ``device_map`` for this rank
            (:meth:`~modprobe.study.distributed.World.placement`).

    Returns:
        ``(loaded, translators, vocab_size)``: the :class:`~modprobe.loading.LoadedModel`,
        the tuned lens's translators (None for the logit lens) and the size of the
        unembedding's vocabulary.

    Raises:
        CandidateError: a ``--candidates`` answer is not in the vocabulary (checked
            before any data is generated).
    """
    from modprobe.capture.candidates import resolve_candidates
    from modprobe.loading import load

    remote = {} if config.remote is None else {
        "remote": True if config.remote == "ndif" else config.remote}
    loaded = load(config.model, dtype=config.dtype, **placement, **remote)
    translators = study_translators(config, loaded)
    vocab_size = int(loaded.adapter.lm_head(loaded.module).weight.shape[0])
    if config.candidates:
        resolve_candidates(config.candidates, loaded.tokenizer, vocab_size)
    return loaded, translators, vocab_size


def _load_inputs(config: StudyConfig, out: Path, given: Any, loaded: Any,
                 vocab_size: int) -> RunInputs:
    """The run's items, candidates, fingerprints and manifest entries.

    Args:
        config: The options.
        out: The run folder (the generated dataset goes to ``out/data``).
        given: The dataset loaded from ``config.data``, or None to generate (or, on a
            resume, reload) it.
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        vocab_size: The size of its vocabulary (candidates must be in it).

    Returns:
        The :class:`~modprobe.study.driver.RunInputs`; its ``extra`` holds the dataset and
        the candidate answers.

    Raises:
        CandidateError: an answer of the dataset is not in the vocabulary (no silent
            ``<unk>``).
    """
    from modprobe.capture.candidates import resolve_candidates
    from modprobe.data import load_dataset

    data = Path(config.data) if config.data is not None else _generate_data(config, out)
    dataset = given or load_dataset(data)
    items = list(dataset.items)[: config.limit] if config.limit else list(dataset.items)
    candidates = config.candidates or sorted(
        {a for it in items for a in (it.answer_vision, it.answer_text)})
    resolve_candidates(candidates, loaded.tokenizer, vocab_size)  # no silent <unk>
    fingerprints = {"data": data_fingerprint(data, [it.image for it in dataset.items]),
                    "model": model_fingerprint(loaded.module)}
    return RunInputs(data=data, items=items, fingerprints=fingerprints,
                     manifest={"source": loaded.source, "family": loaded.adapter.family,
                               "candidates": candidates, "span_names": list(SPAN_NAMES),
                               "conditions": list(CONDITIONS)},
                     extra={"dataset": dataset, "candidates": candidates})


def _analyse(config: StudyConfig, analysis: AnalysisOptions, driver: RunDriver,
             gathered: RunTables, tuned: bool) -> StudyResult:
    """Analyse the gathered tables, write the analysis and mark the run complete.

    Args:
        config: The options.
        analysis: The analysis options, checked before the run started.
        driver: The run's driver (its folder, and :meth:`~RunDriver.finish`).
        gathered: What :meth:`~RunDriver.run_chunks` gathered (tables, and whether they
            were gathered now rather than read back from a finished run).
        tuned: Whether the run captured the tuned lens.

    Returns:
        The :class:`StudyResult`.
    """
    from modprobe.study.report import analyze_run

    items_frame = gathered.tables["items.csv"]
    layers_frame = gathered.tables["layers.csv"]
    mass = gathered.tables["attention_mass.npy"]
    if gathered.fresh:
        write_table(table_path(driver.out, "attention", config.table_format),
                    attention_table(mass, items_frame["id"].tolist()))
    summary, figures = analyze_run(driver.out, items_frame, layers_frame, mass, analysis,
                                   model_name=config.model, num_layers=mass.shape[2])
    if config.causal or tuned:
        from modprobe.study.causal import analyze_causal_and_tuned

        analyze_causal_and_tuned(driver.out, gathered.tables, items_frame, mass, analysis,
                                 config.model, summary, figures, config.table_format)
    driver.finish(analysis.record())
    return StudyResult(out=driver.out, items=items_frame, layers=layers_frame,
                       attention_mass=mass, summary=summary, figures=figures)


def _check_spans(previous: dict[str, Any] | None, out: Path) -> None:
    """Refuse to resume a run captured with another span axis (its arrays would not stack)."""
    written = previous.get("span_names") if previous is not None else None
    if written is not None and tuple(written) != SPAN_NAMES:
        raise StudyError(
            f"cannot resume {out}: it was written with spans {', '.join(written)} and this "
            f"modprobe captures {', '.join(SPAN_NAMES)}; start a new run with another --out")
