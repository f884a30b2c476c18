"""The one run driver: the start sequence, chunk loop and finish every runner shares.

A runner (the following study, the interference study, ...) says what its run is (a
:class:`RunSpec`), how to load its inputs and how to capture one chunk; the driver does
the rest, in the same order for every kind of run::

    driver = RunDriver(spec)
    driver.check_folder()                 # writes nothing: a typo leaves no trace
    ...runner's own checks and model loading...
    inputs = driver.prepare(load_inputs)  # inputs, fingerprints, folder (undone on failure)
    tables = driver.run_chunks(inputs.items, capture_chunk, progress)  # resumable chunks
    ...runner's analysis (summary.json, figures)...
    driver.finish(analysis)               # manifest: analysis options, status complete

Chunks are fixed by the item list and the batch size, so chunk ``i`` always holds the
same items. A :class:`Shard` is a filter on those chunks: several processes (ranks) can
each capture their own chunks of one run folder, and one of them gathers the tables
once all chunks are written (:meth:`RunDriver.gather`). The analysis options every
runner shares are :class:`~modprobe.study.analysis_options.AnalysisOptions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modprobe.io import table_path
from modprobe.study.analysis_options import COMMON_ANALYSIS, AnalysisOptions
from modprobe.study.distributed import Shard, World
from modprobe.study.runfolder import (
    MANIFEST,
    StudyError,
    check_run_folder,
    chunk_folder,
    finished_chunks,
    gather_chunks,
    mark_complete,
    prepare_run_folder,
    undo_new_run,
    write_chunk,
)

__all__ = ["COMMON_ANALYSIS", "AnalysisOptions", "RunDriver", "RunInputs", "RunSpec",
           "RunTables", "Shard", "World"]



@dataclass
class RunSpec:
    """What a runner's run is, for the driver.

    Attributes:
        kind: The run kind (``following``, ``interference``); a resume of another kind is
            refused.
        out: The run folder.
        resume: Continue the run in ``out``.
        options: The run's options (written to the manifest).
        resume_keys: The options that change the numbers (equal on resume).
        batch_size: Items per chunk.
        tables: The chunk files gathered into the run's tables, in order; every chunk has
            them. The marker (last written, chunk done) is ``items.csv``. Chunks are CSV
            and ``.npy``; the gathered tables are written in ``table_format``.
        optional_tables: Chunk files gathered only when every chunk has them (runs resumed
            from an older version may lack them).
        generated: Entries the runner writes into a new ``out`` before preparing it (the
            data it generates).
        progress_label: The progress bar's label.
        table_format: ``parquet`` or ``csv``: the format of the gathered tables.
        resume_defaults: The value of a resume key that older manifests lack (an option
            added since), so that resuming such a run compares against what it meant.
    """

    kind: str
    out: Path
    resume: bool
    options: dict[str, Any]
    resume_keys: Sequence[str]
    batch_size: int
    tables: Sequence[str]
    optional_tables: Sequence[str] = ()
    generated: Sequence[str] = ()
    progress_label: str = "modprobe"
    table_format: str = "parquet"
    resume_defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunInputs:
    """The inputs a runner loaded for a run.

    Attributes:
        data: The dataset folder (fingerprinted).
        items: The items to run, in order (chunks are consecutive slices of it).
        fingerprints: ``{"data": data_fingerprint(...), "model": model_fingerprint(...)}``
            (:mod:`modprobe.study.runfolder`): recorded, and compared on resume.
        manifest: Entries the runner adds to the manifest (source, candidates, ...).
        extra: Anything else the runner needs later (the loaded dataset, ...).
    """

    data: Path
    items: list[Any]
    fingerprints: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunTables:
    """The gathered tables of a run and whether they were gathered now.

    Attributes:
        tables: The run's whole tables by chunk file name.
        fresh: False for a resumed finished run, whose tables were read back.
    """

    tables: dict[str, Any]
    fresh: bool


class RunDriver:
    """Drives one run folder from the first check to the finished manifest.

    Args:
        spec: What the run is.
        world: The processes of a data-parallel run
            (:func:`modprobe.study.distributed.current_world`; default one process).
            Rank 0 checks and prepares the folder, every rank captures its shard of the
            chunks, rank 0 gathers.
    """

    def __init__(self, spec: RunSpec, world: Any = None):
        """Hold the spec and the world; nothing is checked or written yet."""
        self.spec = spec
        self.world = world if world is not None else World()
        self.out = Path(spec.out)
        self.previous: dict[str, Any] | None = None  # the resumed run's manifest
        self.manifest: dict[str, Any] = {}

    @property
    def resuming(self) -> bool:
        """Whether an existing run is being resumed (known after :meth:`check_folder`)."""
        return self.previous is not None

    def check_folder(self) -> dict[str, Any] | None:
        """Check the run folder (writes nothing); returns the resumed run's manifest.

        Raises:
            StudyError: the folder is a file, unwritable, not empty without ``resume``,
                holds no run to resume or a run of another kind.
        """
        self.previous = self.world.on_main(
            lambda: check_run_folder(self.out, self.spec.resume, kind=self.spec.kind))
        return self.previous

    def prepare(self, load_inputs: Callable[[], RunInputs]) -> RunInputs:
        """Load the inputs (and their fingerprints), create (or check) the run folder.

        A new run's folder is removed again when any of this fails, so a refused run
        leaves nothing behind; a refused resume touches nothing of the run.

        Args:
            load_inputs: Loads (or generates into the run folder) the run's inputs and
                fingerprints its data and model.

        Returns:
            What ``load_inputs`` returned (on every rank: the others load theirs once rank
            0 prepared the folder and generated any data into it).
        """
        prepared: list[RunInputs] = []

        def prepare_on_main() -> dict[str, Any]:
            prepared.append(self._prepare_here(load_inputs))
            return self.manifest

        self.manifest = self.world.on_main(prepare_on_main)
        return prepared[0] if prepared else load_inputs()

    def _prepare_here(self, load_inputs: Callable[[], RunInputs]) -> RunInputs:
        spec = self.spec
        created = not self.out.exists()
        try:
            inputs = load_inputs()
            if not inputs.items:
                raise StudyError(f"no items to run in {inputs.data}")
            self.manifest = prepare_run_folder(self.out, spec.options, spec.resume,
                                               spec.resume_keys, kind=spec.kind,
                                               resume_defaults=spec.resume_defaults,
                                               fingerprints=inputs.fingerprints,
                                               generated=spec.generated)
        except BaseException:
            if not self.resuming:
                undo_new_run(self.out, created)
            raise
        self.manifest.update({"n_items": len(inputs.items), "data_folder": str(inputs.data),
                              **inputs.manifest})
        self._write_manifest()
        return inputs

    def chunks(self, items: Sequence[Any]) -> list[Sequence[Any]]:
        """The run's chunks: consecutive slices of ``batch_size`` items."""
        size = self.spec.batch_size
        return [items[i:i + size] for i in range(0, len(items), size)]

    def is_finished(self) -> bool:
        """Whether the run folder holds a finished run with its gathered tables."""
        return (self.manifest.get("status") == "complete"
                and all(table_path(self.out, name).is_file() for name in self.spec.tables))

    def run_chunks(self, items: Sequence[Any],
                   capture: Callable[[Sequence[Any]], Mapping[str, Any]],
                   progress: bool = True, on_chunk: Callable[[int], None] | None = None,
                   shard: Shard | None = None) -> RunTables | None:
        """Capture every chunk not yet on disk, then gather the run's tables.

        Args:
            items: The run's items.
            capture: Captures one chunk; returns its files (``{"items.csv": frame, ...}``).
            progress: Show a progress bar.
            on_chunk: Called with the chunk index after each chunk is written.
            shard: The chunks this process captures (default: the world's shard, all of
                them for one process).

        Returns:
            The gathered tables (a finished run's tables read back, nothing recomputed);
            None on the ranks other than 0 of a data-parallel run, which only capture.

        Raises:
            StudyError: a disk or memory failure (the finished chunks are kept).
        """
        if self.is_finished():
            if not self.world.is_main:
                return None
            return RunTables(gather_chunks(self.out, 0, self.spec.tables), fresh=False)
        chunks = self.chunks(items)
        shard = shard if shard is not None else self.world.shard
        try:
            self.capture_chunks(chunks, capture, progress and self.world.is_main, on_chunk,
                                shard)
        except OSError as err:
            raise StudyError(f"{_describe(err)}; the finished chunks are kept in {self.out}: "
                             "fix this, then rerun the same command with --resume") from err
        except Exception as err:
            if type(err).__name__ != "OutOfMemoryError":
                raise
            raise StudyError(f"{_describe(err)}; the finished chunks are kept in {self.out}: "
                             "free memory and rerun with --resume, or use a smaller "
                             "--batch-size in a new --out") from err
        self.world.barrier()  # every rank's chunks are written
        return self.gather(len(chunks)) if self.world.is_main else None

    def capture_chunks(self, chunks: Sequence[Sequence[Any]],
                       capture: Callable[[Sequence[Any]], Mapping[str, Any]],
                       progress: bool, on_chunk: Callable[[int], None] | None,
                       shard: Shard | None = None) -> None:
        """The chunk loop: capture and write this shard's unfinished chunks, in order.

        Args:
            chunks: The run's items, chunk by chunk.
            capture: Captures one chunk's items and returns its files by name.
            progress: Show a progress bar.
            on_chunk: Called with the chunk index after each chunk is written.
            shard: The chunks this process captures (None: all).
        """
        from tqdm.auto import tqdm

        shard = shard or Shard()  # the whole run
        mine = [i for i in range(len(chunks)) if shard.takes(i)]
        done = finished_chunks(self.out, len(chunks))
        bar = tqdm(total=sum(len(chunks[i]) for i in mine), unit="item",
                   desc=self.spec.progress_label, disable=not progress,
                   initial=sum(len(chunks[i]) for i in mine if i in done))
        for index in mine:
            if index in done:
                continue
            write_chunk(chunk_folder(self.out, index), capture(chunks[index]))
            bar.update(len(chunks[index]))
            if on_chunk is not None:
                on_chunk(index)
        bar.close()

    def gather(self, count: int) -> RunTables:
        """Concatenate the ``count`` chunks' files into the run's tables.

        Called once all are written: in a sharded run, after every rank finished its chunks.

        Args:
            count: The number of chunks.

        Returns:
            The gathered tables (``fresh``).
        """
        tables = gather_chunks(self.out, count, self.spec.tables, self.spec.table_format)
        optional = [name for name in self.spec.optional_tables
                    if all((chunk_folder(self.out, i) / name).is_file() for i in range(count))]
        if optional:
            tables.update(gather_chunks(self.out, count, optional, self.spec.table_format))
        return RunTables(tables, fresh=True)

    def finish(self, analysis: Mapping[str, Any]) -> None:
        """Record the analysis in the manifest, mark the run complete, drop the chunks."""
        self.manifest["analysis"] = dict(analysis)
        mark_complete(self.out, self.manifest, remove_chunks=True)

    def _write_manifest(self) -> None:
        from modprobe.io import write_json

        write_json(self.out / MANIFEST, self.manifest)


def _describe(err: BaseException) -> str:
    from modprobe.errors import describe

    return describe(err)
