"""A finished run folder loaded back: :class:`Run`, its :class:`Tables`, :func:`load_run`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modprobe.analysis.table import TABLE_SUFFIXES
from modprobe.run.kinds import KINDS, RunKind
from modprobe.study.driver import AnalysisOptions
from modprobe.study.runfolder import MANIFEST, StudyError, read_table, upgrade_options

SUMMARY = "summary.json"
#: Prefix of the folders re-analyses are written to (``analysis-2``, ...).
ANALYSIS_PREFIX = "analysis-"


@dataclass
class Analysis:
    """One analysis of a run's tables.

    Attributes:
        folder: Where it was written.
        options: The options it was computed with.
        summary: Its ``summary.json`` (``lines``: the printed summary).
        result: What the run kind's analysis returned (summary, report, figures, ...).
    """

    folder: Path
    options: AnalysisOptions
    summary: dict[str, Any]
    result: tuple[Any, ...] = ()


class Tables(Mapping[str, Any]):
    """The tables of a folder by name, each read on first use.

    ``items`` names ``items.parquet`` or ``items.csv``; ``.npy`` arrays are included as
    arrays.
    """

    def __init__(self, folder: Path):
        """List the tables and arrays of ``folder`` (nothing is read yet).

        Args:
            folder: A run folder, or one of its analysis folders.
        """
        self.folder = folder
        self._paths = {p.stem: p for p in sorted(folder.iterdir())
                       if p.is_file() and p.suffix in (*TABLE_SUFFIXES, ".npy")}
        self._read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        """The table ``name`` as a data frame (an array for ``.npy``), read once.

        Raises:
            KeyError: the folder has no such table (the message lists those it has).
        """
        if name not in self._paths:
            raise KeyError(f"{self.folder} has no table {name!r}; it has "
                           f"{', '.join(self._paths) or 'none'}")
        if name not in self._read:
            path = self._paths[name]
            if path.suffix == ".npy":
                from modprobe.io import read_npy

                self._read[name] = read_npy(path)
            else:
                self._read[name] = read_table(path)
        return self._read[name]

    def __iter__(self) -> Iterator[str]:
        """The table names, in file-name order."""
        return iter(self._paths)

    def __len__(self) -> int:
        """How many tables and arrays the folder holds."""
        return len(self._paths)

    def __repr__(self) -> str:
        """The folder and its table names (nothing is read)."""
        return f"Tables({str(self.folder)!r}: {', '.join(self._paths)})"


@dataclass
class Run:
    """A finished run folder, loaded back (see :func:`load_run`).

    Attributes:
        path: The run folder.
        manifest: Its ``manifest.json``.
        kind: How it is loaded and re-analysed.
    """

    path: Path
    manifest: dict[str, Any]
    kind: RunKind
    _tables: Tables | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        """The folder, kind, table names and number of re-analyses."""
        return (f"Run({str(self.path)!r}, kind={self.kind.name!r}, "
                f"tables={list(self.tables)}, analyses={len(self.analyses)})")

    @property
    def options(self) -> dict[str, Any]:
        """The manifest's options (old manifests upgraded: ``data_seed`` from ``seed``)."""
        return upgrade_options(self.manifest.get("options", {}))

    @property
    def config(self) -> Any:
        """The run's options as its config dataclass (``StudyConfig``, ...)."""
        return self.kind.config(self.options, self.path)

    @property
    def tables(self) -> Tables:
        """Every table of the run's folder by name, read lazily."""
        if self._tables is None:
            self._tables = Tables(self.path)
        return self._tables

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary (``lines``: what the run printed)."""
        if self.kind.summary is not None:
            return self.kind.summary(self)
        return _read_json(self.path / SUMMARY)

    @property
    def analyses(self) -> list[dict[str, Any]]:
        """The re-analyses written beside the run's own (manifest ``analyses``)."""
        return list(self.manifest.get("analyses", []))

    def analysis_options(self, **changes: Any) -> AnalysisOptions:
        """The options of the run's own analysis, with ``changes`` (None: keep)."""
        unknown = sorted(set(changes) - set(self.kind.analysis_keys))
        if unknown:
            raise StudyError(f"a {self.kind.name} run has no analysis option "
                             f"{', '.join(unknown)}; it has {', '.join(self.kind.analysis_keys)}")
        recorded = {**self.options, **(self.manifest.get("analysis") or {})}
        base = {k: v for k, v in recorded.items() if k in self.kind.analysis_keys}
        return AnalysisOptions.of(base, **changes)

    def analyze_into(self, folder: Path, options: AnalysisOptions) -> tuple[Any, ...]:
        """Analyse the run's tables with ``options``, writing into ``folder``.

        Returns:
            What the kind's analysis returns (for a study: summary and figures).

        Args:
            folder: Where the analysis is written (created if needed).
            options: The analysis options.
        """
        if self.kind.analyze is None:
            raise StudyError(f"{self.path} is a {self.kind.name} run: it has no analysis to "
                             "redo")
        folder.mkdir(parents=True, exist_ok=True)
        return self.kind.analyze(self, folder, options)

    def reanalyze(self, **changes: Any) -> Analysis:
        """Analyse the tables again, with ``changes``, into a folder beside the run's own.

        The new analysis goes to ``analysis-2/`` (``analysis-3/``, ...) and is recorded in
        the manifest's ``analyses``; the run's own summary and figures stay as they are.

        Args:
            **changes: Analysis options to change (``seed``, ``n_bootstrap``, ``figures``;
                for a following study also ``axis``, ``entropy_floor``,
                ``balance_estimate``, ``all_conflicts``).

        Returns:
            The new :class:`Analysis`.

        Raises:
            StudyError: an unknown or out-of-range option, or a kind with no analysis.
        """
        from modprobe.io import write_json

        options = self.analysis_options(**changes)
        number = 2
        while (self.path / f"{ANALYSIS_PREFIX}{number}").exists():
            number += 1
        folder = self.path / f"{ANALYSIS_PREFIX}{number}"
        result = self.analyze_into(folder, options)
        entry = {"folder": folder.name, **options.record(self.kind.analysis_keys)}
        self.manifest.setdefault("analyses", []).append(entry)
        write_json(self.path / MANIFEST, self.manifest)
        return Analysis(folder, options, _read_json(folder / SUMMARY), result)

    def reanalyse(self, **changes: Any) -> Analysis:  # deprecated alias
        """Deprecated spelling of :meth:`reanalyze` (modprobe spells it analyze)."""
        warnings.warn("Run.reanalyse is a deprecated alias of Run.reanalyze",
                      DeprecationWarning, stacklevel=2)
        return self.reanalyze(**changes)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path.parent} has no {path.name}: not a finished run; finish it "
                         "with --resume") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StudyError(f"{path} is damaged ({err})") from None
    if not isinstance(value, dict):
        raise StudyError(f"{path} is damaged (not a JSON object)")
    return value


def load_run(path: str | Path) -> Run:
    """Load a finished run folder of any kind (study, interference, MMA, fine-tuning).

    Args:
        path: The run folder.

    Returns:
        The :class:`Run`: manifest, config, tables (read lazily) and summary.

    Raises:
        StudyError: ``path`` holds no finished run (the message says what is missing),
            or a run of an unknown kind.
    """
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise StudyError(f"{path} is not a finished run folder (no {MANIFEST}); give the "
                         "folder a runner wrote (--out)")
    manifest = _read_json(path / MANIFEST)
    kind = manifest.get("kind", "following")  # the first study runs wrote no kind
    if kind not in KINDS:
        raise StudyError(f"{path} holds a {kind!r} run; load_run reads "
                         f"{', '.join(KINDS)} runs")
    if manifest.get("status") != "complete":
        raise StudyError(f"{path} is not a finished run folder (status "
                         f"{manifest.get('status')!r}); finish it with the same command "
                         "plus --resume")
    return Run(path, manifest, KINDS[kind])
