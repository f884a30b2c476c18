"""The interference study: every item clean and under each perturbation, in one run folder.

For every task item (``modprobe.data.tasks``) the model answers the clean input and each
perturbation of the item's irrelevant modality (``modprobe.perturb``), in batches, with
one capture each (logit lens + attention mass at the answer position). Chunks of items
are written as they finish (``modprobe.study.runfolder``): a killed run resumes and ends
with the tables of an uninterrupted one. ``python -m modprobe.interference`` is the
command-line face of this module.

Run folder::

    RUN/manifest.json           model, data, perturbations, seeds, versions
    RUN/data/                   the generated color tasks (when no --data was given)
    RUN/chunks/NNNNN/           per-chunk tables (items.csv last = chunk done)
    RUN/items.parquet           one row per item x draw x condition: answer, category,
                                correct, draw, seed
    RUN/layers.parquet          one row per item x draw x condition x layer (lens)
    RUN/attention_mass.npy      `row layer head span` float32, rows as in items
                                (absent with --no-attention)
    RUN/attention.parquet       head-averaged mass: id, perturbation, layer, span, mass
    RUN/flips.parquet           one row per item x draw x perturbation: correct, flipped
    RUN/draws.parquet           per condition x draw: accuracy and flip rate of that draw
    RUN/attention_shift.parquet per perturbation x layer: mass on the perturbed span,
                                clean vs perturbed, with intervals
    RUN/summary.json            accuracy and delta per condition (the printed lines)
    RUN/figures/*.png           radar, delta bars, attention shift by layer
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from modprobe.data.tasks import TaskSet
from modprobe.perturb import perturbed_span
from modprobe.spans import SPAN_NAMES
from modprobe.stats import DEFAULT_RESAMPLES
from modprobe.study.driver import COMMON_ANALYSIS, AnalysisOptions, RunDriver, RunInputs, RunSpec
from modprobe.study.interference_chunk import answer_candidates, condition_variants, run_chunk
from modprobe.study.runfolder import (
    StudyError,
    data_fingerprint,
    model_fingerprint,
    ri_folder_fingerprint,
)

#: Options that change the numbers: a resumed run must use the same values.
_RESUME_KEYS = ("model", "data", "perturb", "groups", "format", "batch_size", "limit",
                "dtype", "top_k", "data_seed", "image_size", "ri_folder", "uf_sentences", "attention",
                "table_format", "text_baseline", "draws")
TABLES = ("items.csv", "layers.csv", "attention_mass.npy")

__all__ = ["TABLES", "InterferenceConfig", "InterferenceResult", "condition_variants",
           "run_chunk", "run_interference"]


@dataclass
class InterferenceConfig:
    """Options of one interference run (written to the manifest).

    Attributes:
        model: Alias, hub id or folder.
        data: Task folder (``modprobe.data.tasks`` schema); None: generate the color
            world's image-heavy and text-heavy tasks into ``out/data``.
        out: Run folder.
        perturb: Perturbation names (None: every built-in one, less RP under the noise
            baseline).
        batch_size: Items per chunk (each chunk runs one batch per condition).
        limit: Only the first ``limit`` items.
        device: Torch device (None: CUDA when available).
        device_map: Shard the model over devices instead (as in
            :class:`modprobe.study.StudyConfig`).
        dtype: Model dtype.
        top_k: Lens top tokens kept per layer.
        seed: Seed of the bootstrap (a resumed or re-analysed run may change it).
        n_bootstrap: Bootstrap replicates of the cluster intervals.
        resume: Continue an interrupted run in ``out``.
        figures: Draw the figures.
        groups: Generator groups when ``data`` is None (default 12 organism, 8 others).
        format: ``"choice"`` or ``"open"`` for generated data (default: open for the
            organism, whose vocabulary has no option letters, choice otherwise).
        image_size: ``(width, height)`` of image perturbations (None: the processor's).
        ri_folder: Folder of real irrelevant images for RI (None: generated scenes).
        uf_sentences: Unrelated facts per UF perturbation.
        attention: Capture the attention mass (off: logit lens only, for models whose
            attention cannot be read, e.g. cross-attention layers).
        data_seed: Seed of the perturbations (draw 0; the other draws derive theirs from
            it, :func:`modprobe.perturb.draw_seeds`) and the generated data.
        table_format: ``parquet`` (default) or ``csv``: the format of the run's tables.
        allow_train_overlap: Evaluate a fine-tuning run on items that share content with
            its training items (refused otherwise; flagged in the manifest and summary).
        text_baseline: Clean input of text-heavy items without an image: ``noise`` (a
            random-pixel image, paper 003's default) or ``none`` (no image).
        draws: Perturbation draws: every item runs clean and perturbed once per draw.
    """

    model: str
    data: str | None
    out: str
    perturb: list[str] | None = None
    batch_size: int = 16
    limit: int | None = None
    device: str | None = None
    device_map: str | dict[str, Any] | None = None
    dtype: str = "auto"
    top_k: int = 5
    seed: int = 0
    n_bootstrap: int = DEFAULT_RESAMPLES
    resume: bool = False
    figures: bool = True
    groups: int | None = None
    format: str | None = None
    image_size: list[int] | None = None
    ri_folder: str | None = None
    uf_sentences: int = 3
    attention: bool = True
    data_seed: int = 0
    table_format: str = "parquet"
    allow_train_overlap: bool = False
    text_baseline: str = "noise"
    draws: int = 5

    def options_for(self, name: str) -> dict[str, Any]:
        """Options of perturbation ``name`` in this run (size is added at run time)."""
        if name == "RI" and self.ri_folder:
            return {"folder": self.ri_folder}
        if name == "UF":
            return {"sentences": self.uf_sentences}
        return {}


@dataclass
class InterferenceResult:
    """A finished run (also on disk).

    Attributes:
        out: The run folder.
        items: One row per item x condition.
        report: Accuracy and delta per condition.
        shift: Attention on the perturbed span by layer.
        summary: ``summary.json``.
        figures: Paths of the figures.
    """

    out: Path
    items: pd.DataFrame
    report: Any
    shift: pd.DataFrame
    summary: dict[str, Any]
    figures: list[Path] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """The lines the run printed (accuracy and delta per condition, notes)."""
        return list(self.summary.get("lines", []))


def _check_inputs(config: InterferenceConfig) -> tuple[TaskSet | None, list[str]]:
    """Validate everything the user gave before anything is written."""
    from modprobe.data.tasks import load_tasks
    from modprobe.loading import resolve_source
    from modprobe.perturb import (
        BUILTIN,
        applicable,
        check_perturbation,
        check_text_baseline,
        default_perturbations,
        perturbation_names,
    )

    if config.batch_size < 1:
        raise StudyError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.limit is not None and config.limit < 1:
        raise StudyError(f"--limit must be at least 1, got {config.limit}")
    if config.format not in (None, "open", "choice"):
        raise StudyError(f"--format must be open or choice, got {config.format!r}")
    check_text_baseline(config.text_baseline)
    if config.draws < 1:
        raise StudyError(f"--draws must be at least 1, got {config.draws}")
    names = perturbation_names(config.perturb) if config.perturb else default_perturbations(
        BUILTIN, config.text_baseline)
    for name in names:
        check_perturbation(name, **config.options_for(name))
    resolve_source(config.model)
    tasks = load_tasks(config.data) if config.data is not None else None
    if tasks is not None and not any(applicable(it, names) for it in tasks):
        raise StudyError(f"no item of {config.data} fits the perturbations {names}: text "
                         "perturbations need image-heavy items (relevant=image), image ones "
                         "text-heavy items (relevant=text)")
    return tasks, names


def _generate(config: InterferenceConfig, out: Path) -> Path:
    from modprobe.data.color_tasks import generate_color_tasks

    data = out / "data"
    if not (data / "items.jsonl").is_file():
        from modprobe.data.split import base_model

        organism = base_model(config.model) == "organism"  # a tuned organism: same variant
        generate_color_tasks(data, groups=config.groups or (12 if organism else 8),
                             seed=config.data_seed, variant="lowres" if organism else "paper",
                             fmt=config.format or ("open" if organism else "choice"),
                             overwrite=True)
    return data


def _heldout_line(config: InterferenceConfig, tasks: TaskSet, items: list[Any]) -> str | None:
    """For a fine-tuning run: check that no item was trained on (modprobe.data.split)."""
    from modprobe.data.split import finetune_run, heldout_note

    run = finetune_run(config.model)
    if run is None:
        return None
    return heldout_note(run, [tasks.open(it) for it in items], config.allow_train_overlap)


def run_interference(config: InterferenceConfig, progress: bool = True,
                     on_chunk: Callable[[int], None] | None = None
                     ) -> InterferenceResult | None:
    """Run (or resume) an interference study and write its run folder.

    Args:
        config: The options.
        progress: Show a progress bar.
        on_chunk: Called with the chunk index after each chunk is written.

    Returns:
        The :class:`InterferenceResult`; None on the ranks other than 0 of a
        data-parallel run (as :func:`modprobe.study.run_study`).

    Raises:
        StudyError: the run folder exists (without ``resume``) or does not match; a disk
            or memory failure mid-run (finished chunks are kept).
        DatasetError: the task folder does not validate.
        PerturbationError: an unknown perturbation or bad perturbation options.
    """
    from modprobe.data.split import default_eval_data
    from modprobe.loading import load
    from modprobe.study.distributed import current_world

    if config.data is None and (heldout := default_eval_data(config.model)) is not None:
        config = replace(config, data=heldout)  # a tuned run: its held-out items
    # Check everything the user gave before writing anything (as the study runner does): a
    # typo must not leave a run folder, and a refused resume must not touch the run.
    given, names = _check_inputs(config)
    analysis = AnalysisOptions.of(config)
    world = current_world()
    driver = _driver(config, names, world)
    driver.check_folder()
    loaded = load(config.model, dtype=config.dtype,
                  **world.placement(config.device, config.device_map))  # one GPU per rank
    size, size_note = _image_size(config, loaded)
    inputs = driver.prepare(lambda: _load_inputs(config, driver.out, given, names, loaded,
                                                 size, size_note))
    tasks, candidates = inputs.extra["tasks"], inputs.extra["candidates"]
    gathered = driver.run_chunks(
        inputs.items, lambda chunk: run_chunk(loaded, [tasks.open(item) for item in chunk],
                                              names, config, size, candidates),
        progress=progress, on_chunk=on_chunk)
    if gathered is None:  # another rank than 0: its chunks are written, rank 0 analyses
        return None
    return _analyse(config, analysis, driver, gathered.tables, names, inputs.extra["heldout"])


def _driver(config: InterferenceConfig, names: list[str], world: Any) -> RunDriver:
    """The run driver of ``config``: its folder, options (with the perturbations) and tables.

    Args:
        config: The options.
        names: The perturbations the run applies (recorded in the manifest's options).
        world: The data-parallel world (:func:`modprobe.study.distributed.current_world`).

    Returns:
        A :class:`~modprobe.study.driver.RunDriver` that has not touched the folder yet.
    """
    options = {k: v for k, v in asdict(config).items() if k not in ("resume", "out")}
    options["perturb"] = names
    return RunDriver(RunSpec(
        kind="interference", out=Path(config.out), resume=config.resume, options=options,
        resume_keys=_RESUME_KEYS, batch_size=config.batch_size,
        tables=TABLES if config.attention else TABLES[:2],
        generated=("data",) if config.data is None else (),
        progress_label="modprobe.interference", table_format=config.table_format), world)


def _load_inputs(config: InterferenceConfig, out: Path, given: TaskSet | None,
                 names: list[str], loaded: Any, size: tuple[int, int],
                 size_note: str) -> RunInputs:
    """The run's items, fingerprints and manifest entries (generating the data if needed).

    Args:
        config: The options.
        out: The run folder (generated tasks go to ``out/data``).
        given: The task set :func:`_check_inputs` loaded, or None to load (or generate) it.
        names: The perturbations the run applies.
        loaded: The :class:`~modprobe.loading.LoadedModel`.
        size: The size of image perturbations.
        size_note: Where ``size`` came from (recorded in the manifest).

    Returns:
        The :class:`~modprobe.study.driver.RunInputs`; its ``extra`` holds the task set,
        the lens candidates and the held-out line of a fine-tuning run (or None).
    """
    from modprobe.data.tasks import load_tasks
    from modprobe.perturb import check_items_perturbable

    data = Path(config.data) if config.data is not None else _generate(config, out)
    tasks = given or load_tasks(data)
    items = list(tasks.items)[: config.limit] if config.limit else list(tasks.items)
    check_items_perturbable(items, names, config.data_seed, config.options_for)
    candidates = answer_candidates(items, loaded)
    heldout_line = _heldout_line(config, tasks, items)
    images = [it.image_file for it in tasks.items if it.image_file is not None]
    fingerprints = {"data": data_fingerprint(data, images),
                    "model": model_fingerprint(loaded.module)}
    if config.ri_folder and "RI" in names:  # the photos, not just the folder's path
        fingerprints["ri_folder"] = ri_folder_fingerprint(config.ri_folder)
    return RunInputs(
        data=data, items=items, fingerprints=fingerprints,
        manifest={"source": loaded.source, "family": loaded.adapter.family,
                  "image_size": list(size), "image_size_note": size_note,
                  "candidates": candidates, "span_names": list(SPAN_NAMES),
                  "perturbed_spans": {n: perturbed_span(n) for n in names},
                  **({"heldout": heldout_line} if heldout_line else {})},
        extra={"tasks": tasks, "candidates": candidates, "heldout": heldout_line})


def _analyse(config: InterferenceConfig, analysis: AnalysisOptions, driver: RunDriver,
             gathered: dict[str, Any], names: list[str],
             heldout: str | None) -> InterferenceResult:
    """Analyse the gathered tables, write the analysis and mark the run complete.

    Args:
        config: The options.
        analysis: The analysis options, checked before the run started.
        driver: The run's driver (its folder, and :meth:`~RunDriver.finish`).
        gathered: The run's whole tables by file name.
        names: The perturbations the run applied.
        heldout: The held-out line of a fine-tuning run, said first in the summary.

    Returns:
        The :class:`InterferenceResult`.
    """
    from modprobe.study.interference_report import analyze_interference_run

    summary, report, shift, figures = analyze_interference_run(
        driver.out, gathered["items.csv"], gathered.get("attention_mass.npy"), names,
        model_name=config.model, n_bootstrap=analysis.n_bootstrap, seed=analysis.seed,
        figures=analysis.figures, table_format=analysis.table_format,
        text_baseline=config.text_baseline)
    if heldout:  # said first: whether these numbers are held-out
        summary["lines"] = [heldout, *summary.get("lines", [])]
    driver.finish(analysis.record(COMMON_ANALYSIS))
    return InterferenceResult(driver.out, gathered["items.csv"], report, shift, summary,
                              figures)


def _image_size(config: InterferenceConfig, loaded: Any) -> tuple[tuple[int, int], str]:
    """The size of image perturbations and where it came from."""
    from modprobe.perturb import DEFAULT_SIZE, PerturbationError, processor_image_size

    if config.image_size:
        return (int(config.image_size[0]), int(config.image_size[1])), "--image-size"
    try:
        return processor_image_size(loaded.processor), "the processor's"
    except PerturbationError:
        return DEFAULT_SIZE, (f"the processor does not say its size: {DEFAULT_SIZE[0]}x"
                              f"{DEFAULT_SIZE[1]} used (pass --image-size W H)")
