"""Load any finished run back: its manifest, config, tables and summary; re-analyse it.

```python
import modprobe
run = modprobe.load_run("runs/organism")        # a study, interference, MMA or fine-tuning run
run.config                                      # StudyConfig(...), as the run was started
run.tables["items"]                             # tidy frame, read on first use
run.summary["lines"]                            # what the run printed
again = run.reanalyze(seed=1, n_bootstrap=500)  # writes runs/organism/analysis-2/
```

The parts: :mod:`~modprobe.run.folder` (:class:`Run`, :func:`load_run`),
:mod:`~modprobe.run.kinds` (what differs between study, interference, MMA and
fine-tuning runs) and :mod:`~modprobe.run.inplace` (re-analysis in place).

A re-analysis needs only the tables, never the model. It is written beside the run's own
analysis (``analysis-2/``, ``analysis-3/``, ...) and listed in the manifest's
``analyses``, so the folder says how every summary in it was computed.
"""

from __future__ import annotations

from modprobe.run.folder import ANALYSIS_PREFIX, SUMMARY, Analysis, Run, Tables, load_run
from modprobe.run.inplace import (
    analyse_folder,
    analyse_interference_folder,
    analyze_folder,
    analyze_interference_folder,
)
from modprobe.run.kinds import KINDS, RunKind
from modprobe.study.runfolder import upgrade_options

__all__ = [
    "ANALYSIS_PREFIX", "KINDS", "SUMMARY", "Analysis", "Run", "RunKind", "Tables",
    "analyse_folder", "analyse_interference_folder", "analyze_folder",
    "analyze_interference_folder", "load_run", "upgrade_options",
]
