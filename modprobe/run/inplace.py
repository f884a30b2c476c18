"""Re-analysis in place: a finished run's summary and figures rewritten from its tables.

:meth:`modprobe.run.Run.reanalyze` writes a new analysis beside the run's own; these
functions rewrite the run's own analysis instead and record the options in its manifest.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modprobe.run.folder import load_run
from modprobe.study.driver import COMMON_ANALYSIS
from modprobe.study.runfolder import MANIFEST

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


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

    Args:
        run: The run folder.
        n_bootstrap: Bootstrap replicates.
        seed: Seed of the bootstrap.
        figures: Draw the figures again.
        axis: Uncertainty axis, ``rel`` or ``abs``.
        entropy_floor: Floor on entropies (nats) before the axis is computed.
        balance_estimate: How the balance point is estimated (see
            :class:`~modprobe.study.driver.AnalysisOptions`).
        all_conflicts: Keep every conflict (skip the paper's correctness filter).

    Returns:
        ``(summary, figure paths)``.

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

    Args:
        run: The interference run folder.
        n_bootstrap: Bootstrap replicates.
        seed: Seed of the bootstrap.
        figures: Draw the figures again.

    Returns:
        ``(summary, report, attention shift, figure paths)``.

    Raises:
        StudyError: ``run`` is not a finished run folder, or an option is out of range.
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
