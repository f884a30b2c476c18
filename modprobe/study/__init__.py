"""The study runner behind ``python -m modprobe.layers`` (see :mod:`modprobe.study.runner`)."""

from modprobe.study.runfolder import StudyError
from modprobe.study.runner import StudyConfig, StudyResult, attention_table, run_study

__all__ = ["StudyConfig", "StudyError", "StudyResult", "attention_table", "run_study"]
