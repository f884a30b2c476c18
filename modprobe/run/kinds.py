"""The kinds of runs :func:`~modprobe.run.load_run` reads, and what differs between them.

Each :class:`RunKind` says how a kind's config dataclass is rebuilt from its manifest,
where its summary comes from and how its tables are analysed again; :data:`KINDS` holds
them by the manifest's ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modprobe.study.driver import COMMON_ANALYSIS, AnalysisOptions

if TYPE_CHECKING:  # pragma: no cover
    from modprobe.run.folder import Run


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
