"""Load any finished run back: its manifest, config, tables and summary; re-analyse it.

```python
import modprobe
run = modprobe.load_run("runs/organism")        # a study, interference, MMA or fine-tuning run
run.config                                      # StudyConfig(...), as the run was started
run.tables["items"]                             # tidy frame, read on first use
run.summary["lines"]                            # what the run printed
again = run.reanalyze(seed=1, n_bootstrap=500)  # writes runs/organism/analysis-2/
```

A re-analysis needs only the tables, never the model. It is written beside the run's own
analysis (``analysis-2/``, ``analysis-3/``, ...) and listed in the manifest's
``analyses``, so the folder says how every summary in it was computed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modprobe.analysis.table import TABLE_SUFFIXES
from modprobe.study.driver import COMMON_ANALYSIS, AnalysisOptions
from modprobe.study.runfolder import MANIFEST, StudyError, read_table, upgrade_options

if TYPE_CHECKING:
    import pandas as pd

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
    """The tables of a folder by name (``items`` for ``items.parquet`` or ``items.csv``),
    each read on first use; ``.npy`` arrays are included as arrays."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._paths = {p.stem: p for p in sorted(folder.iterdir())
                       if p.is_file() and p.suffix in (*TABLE_SUFFIXES, ".npy")}
        self._read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
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
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __repr__(self) -> str:
        return f"Tables({str(self.folder)!r}: {', '.join(self._paths)})"


@dataclass(frozen=True)
class RunKind:
    """What differs between kinds of runs for loading and re-analysing them.

    Attributes:
        name: The manifest's ``kind``.
        config: Builds the run's config dataclass from the manifest's options and folder.
        summary: The run's summary from its folder (None: ``summary.json``).
        analyze: Analyses the run's tables into a folder (None: nothing to re-analyse).
        analysis_keys: The analysis options that apply to this kind.
    """

    name: str
    config: Callable[[dict[str, Any], Path], Any]
    summary: Callable[[Run], dict[str, Any]] | None = None
    analyze: Callable[[Run, Path, AnalysisOptions], tuple[Any, ...]] | None = None
    analysis_keys: tuple[str, ...] = COMMON_ANALYSIS


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
        """
        if self.kind.analyze is None:
            raise StudyError(f"{self.path} is a {self.kind.name} run: it has no analysis to "
                             "redo")
        folder.mkdir(parents=True, exist_ok=True)
        return self.kind.analyze(self, folder, options)

    def reanalyze(self, **changes: Any) -> Analysis:
        """Analyse the tables again, with ``changes`` to the analysis options, into a new
        folder beside the run's own analysis (``analysis-2/``, ...), and record it in the
        manifest's ``analyses``. The run's own summary and figures stay as they are.

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


def _dataclass_from(cls: type, options: Mapping[str, Any], **more: Any) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in names}, **more)


# ---------------------------------------------------------------- the kinds of runs
def _study_config(options: dict[str, Any], path: Path) -> Any:
    from modprobe.study.runner import StudyConfig

    return _dataclass_from(StudyConfig, options, out=str(path))


def _analyze_study(run: Run, folder: Path, options: AnalysisOptions) -> tuple[Any, ...]:
    from modprobe.study.report import analyze_run

    mass = run.tables["attention_mass"]
    return analyze_run(folder, run.tables["items"], run.tables["layers"], mass, options,
                       model_name=run.options["model"], num_layers=int(mass.shape[2]))


def _interference_config(options: dict[str, Any], path: Path) -> Any:
    from modprobe.study.interference import InterferenceConfig

    return _dataclass_from(InterferenceConfig, options, out=str(path))


def _analyze_interference(run: Run, folder: Path, options: AnalysisOptions) -> tuple[Any, ...]:
    from modprobe.study.interference_report import analyze_interference_run

    mass = run.tables.get("attention_mass")
    return analyze_interference_run(folder, run.tables["items"], mass,
                                    run.options["perturb"], run.options["model"],
                                    options.n_bootstrap, options.seed, options.figures,
                                    span_names=run.manifest.get("span_names"),
                                    table_format=options.table_format,
                                    text_baseline=run.options.get("text_baseline"))


def _finetune_config(options: dict[str, Any], path: Path) -> Any:
    from modprobe.finetune.config import TrainConfig
    from modprobe.finetune.lora import LoraSettings
    from modprobe.finetune.step import LossConfig

    nested = {"lora": _dataclass_from(LoraSettings, {
                  k: tuple(v) if isinstance(v, list) else v
                  for k, v in options.get("lora", {}).items()}),
              "loss": _dataclass_from(LossConfig, options.get("loss", {}))}
    flat = {k: v for k, v in options.items() if k not in nested}
    return _dataclass_from(TrainConfig, flat, out=str(path), **nested)


def _finetune_summary(run: Run) -> dict[str, Any]:
    """What ``modprobe.finetune`` prints, from the manifest and ``log.csv``."""
    log = run.tables["log"]
    last = {k: float(v) for k, v in log.iloc[-1].items()} if len(log) else {}
    steps = int(run.manifest.get("steps_done", len(log)))
    trainable = int(run.manifest.get("trainable_parameters", 0))
    terms = " ".join(f"{k}={v:.4g}" for k, v in last.items() if k not in ("step", "lr", "seconds"))
    return {"steps": steps, "trainable": trainable, "last_step": last,
            "lines": [f"trained {steps} steps ({trainable:,} parameters); last step: {terms}"]}


def _mma_config(options: dict[str, Any], path: Path) -> Any:
    from modprobe.study.mma import MmaConfig

    return _dataclass_from(MmaConfig, options, out=str(path))


def _analyze_mma(run: Run, folder: Path, options: AnalysisOptions) -> tuple[Any, ...]:
    from modprobe.study.mma import analyze_mma_run

    result = analyze_mma_run(folder, run.tables["items"], run.tables["attention"],
                             options.n_bootstrap, options.seed, options.figures,
                             options.table_format)
    return result.summary, result.accuracy, result.contrast, result.figures


KINDS: dict[str, RunKind] = {
    "following": RunKind("following", _study_config, analyze=_analyze_study,
                         analysis_keys=tuple(f.name for f in fields(AnalysisOptions))),
    "interference": RunKind("interference", _interference_config,
                            analyze=_analyze_interference),
    "finetune": RunKind("finetune", _finetune_config, summary=_finetune_summary,
                        analysis_keys=()),
    "mma": RunKind("mma", _mma_config, analyze=_analyze_mma),
}


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


__all__ = ["Analysis", "Run", "RunKind", "Tables", "load_run", "upgrade_options"]


# ------------------------------------------------------------ re-analysis in place
def analyze_folder(run: str | Path, n_bootstrap: int | None = None, seed: int | None = None,
                   figures: bool = True, axis: str | None = None,
                   entropy_floor: float | None = None, balance_estimate: str | None = None,
                   all_conflicts: bool | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Re-analyse a finished run folder from its tables (no model needed).

    Options left at None take the run's own (its ``manifest.json``), so the result
    equals the run's summary unless an option is changed. Rewrites ``summary.json``,
    ``oscillation.csv`` and the figures in place, and records the options used in the
    manifest's ``analysis`` entry, so the folder says how its summary was computed
    (``modprobe.load_run(run).reanalyze(...)`` writes beside the run's own analysis instead).

    Raises:
        StudyError: ``run`` is not a finished run folder, or an option is out of range.
    """
    from modprobe.io import write_json

    loaded = load_run(run)
    options = loaded.analysis_options(
        n_bootstrap=n_bootstrap, seed=seed, axis=axis, entropy_floor=entropy_floor,
        balance_estimate=balance_estimate, all_conflicts=all_conflicts, figures=figures)
    result = loaded.analyze_into(loaded.path, options)
    loaded.manifest["analysis"] = options.record()
    write_json(loaded.path / MANIFEST, loaded.manifest)
    return result


def analyze_interference_folder(run: str | Path, n_bootstrap: int | None = None,
                                seed: int | None = None, figures: bool = True,
                                ) -> tuple[dict[str, Any], Any, pd.DataFrame, list[Path]]:
    """Re-analyse a finished run folder from its tables (no model needed), in place.

    ``n_bootstrap`` and ``seed`` left at None take the run's own (its ``manifest.json``),
    so the result equals the run's summary unless one is changed. The options used are
    recorded in the manifest's ``analysis`` entry
    (``modprobe.load_run(run).reanalyze(...)`` writes beside the run's own analysis instead).
    """
    from modprobe.io import write_json

    loaded = load_run(run)
    options = loaded.analysis_options(n_bootstrap=n_bootstrap, seed=seed, figures=figures)
    result = loaded.analyze_into(loaded.path, options)
    loaded.manifest["analysis"] = options.record(COMMON_ANALYSIS)
    write_json(loaded.path / MANIFEST, loaded.manifest)
    return result


def analyse_folder(*args: Any, **kwargs: Any) -> Any:  # deprecated alias
    """Deprecated spelling of :func:`analyze_folder` (modprobe spells it analyze)."""
    warnings.warn("analyse_folder is a deprecated alias of analyze_folder",
                  DeprecationWarning, stacklevel=2)
    return analyze_folder(*args, **kwargs)


def analyse_interference_folder(*args: Any, **kwargs: Any) -> Any:  # deprecated alias
    """Deprecated spelling of :func:`analyze_interference_folder`."""
    warnings.warn("analyse_interference_folder is a deprecated alias of "  # deprecated alias
                  "analyze_interference_folder", DeprecationWarning, stacklevel=2)
    return analyze_interference_folder(*args, **kwargs)
