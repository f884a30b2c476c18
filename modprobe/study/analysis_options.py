"""How a run's tables are analysed: one :class:`AnalysisOptions` for every runner.

The options change no capture, only the statistics and figures computed from the tables,
so a finished run can be analysed again with others (:meth:`modprobe.run.Run.reanalyze`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from modprobe.io import table_path
from modprobe.stats import DEFAULT_RESAMPLES
from modprobe.study.runfolder import StudyError

#: The analysis options that apply to every kind of run (the rest: following studies).
COMMON_ANALYSIS = ("n_bootstrap", "seed", "figures", "table_format")


@dataclass(frozen=True)
class AnalysisOptions:
    """How a run's tables are analysed (changing them needs no model, only the tables).

    Attributes:
        n_bootstrap: Bootstrap replicates of every interval.
        seed: Seed of the bootstrap.
        figures: Draw the figures.
        axis: Uncertainty axis of the following analysis: ``rel`` or ``abs``.
        entropy_floor: Floor on entropies (nats) before the axis is computed.
        balance_estimate: Balance point reported last (``auto``, the recommended one, or
            ``logistic`` or ``monotone`` to force one).
        all_conflicts: Keep every conflict (skip the paper's correctness filter).
        table_format: Format of the tables the analysis writes (``parquet`` or ``csv``:
            the run's own).
    """

    n_bootstrap: int = DEFAULT_RESAMPLES
    seed: int = 0
    figures: bool = True
    axis: str = "rel"
    entropy_floor: float = 0.0
    balance_estimate: str = "auto"
    all_conflicts: bool = False
    table_format: str = "parquet"

    @classmethod
    def of(cls, source: Any, **changes: Any) -> AnalysisOptions:
        """The analysis options of a run config or a manifest, with ``changes``.

        Args:
            source: A run config, or a manifest's ``options`` mapping; options it lacks
                take the defaults.
            **changes: Options to change; None keeps the source's.

        Returns:
            The checked options.

        Raises:
            StudyError: an unknown option, or a value out of range.
        """
        names = [f.name for f in fields(cls)]
        if isinstance(source, Mapping):
            values = {n: source[n] for n in names if n in source}
        else:
            values = {n: getattr(source, n) for n in names if hasattr(source, n)}
        values.update({k: v for k, v in changes.items() if v is not None})
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise StudyError(f"unknown analysis option(s) {', '.join(unknown)}; the options "
                             f"are {', '.join(names)}")
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        """Refuse values that cannot give a meaningful analysis, naming the option.

        Raises:
            StudyError: naming the option and the value given.
        """
        count = self.n_bootstrap
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise StudyError(f"n_bootstrap (--bootstrap) must be a positive integer, "
                             f"got {count!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise StudyError(f"seed (--seed) must be an integer >= 0, got {self.seed!r}")
        if self.axis not in ("rel", "abs"):
            raise StudyError(f"axis (--axis) must be rel or abs, got {self.axis!r}")
        floor = self.entropy_floor
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or \
                not 0 <= floor < float("inf"):
            raise StudyError(f"entropy_floor (--entropy-floor) must be a number >= 0, "
                             f"got {floor!r}")
        table_path(Path("."), "check", self.table_format)  # refuses an unknown format
        if self.balance_estimate not in ("logistic", "monotone", "auto"):
            raise StudyError(f"balance_estimate (--estimate) must be logistic, monotone or "
                             f"auto, got {self.balance_estimate!r}")

    def replace(self, **changes: Any) -> AnalysisOptions:
        """A copy with ``changes`` (None values ignored), checked."""
        options = replace(self, **{k: v for k, v in changes.items() if v is not None})
        options.check()
        return options

    def record(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The manifest's ``analysis`` entry: the options and when the analysis ran.

        Args:
            names: Record only these options (those that apply to the run's kind).

        Returns:
            The options by name, plus ``at`` (the local time stamp).
        """
        values = asdict(self)
        if names is not None:
            values = {n: values[n] for n in names}
        return {**values, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
