"""The study runner behind ``python -m modprobe.layers`` (see :mod:`modprobe.study.runner`).

Every runner drives its run folder through :mod:`modprobe.study.driver`.
"""

from modprobe.study.driver import AnalysisOptions
from modprobe.study.runfolder import StudyError
from modprobe.study.runner import StudyConfig, StudyResult, attention_table, run_study

__all__ = ["AnalysisOptions", "StudyConfig", "StudyError", "StudyResult", "attention_table",
           "run_study"]
