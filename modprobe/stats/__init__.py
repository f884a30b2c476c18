"""Shared statistics: intervals, cluster resampling (and the law's fits).

Every analysis of modprobe (following, oscillation, interference, sabotage, fine-tuning
reports) takes its intervals and resampling from here, so one choice governs them all.
Definitions and the choices made: docs/science.md.

```python
from modprobe.stats import mean_interval
acc = mean_interval(correct, clusters=table["cluster"])   # Interval(estimate, low, high, ...)
print(acc.format())                                       # 0.812 ci=[0.741, 0.870]
```
"""

from modprobe.stats.intervals import (
    DEFAULT_RESAMPLES,
    Interval,
    mean_interval,
    not_identified,
    percentile_interval,
    wilson_interval,
    wilson_intervals,
)
from modprobe.stats.resample import cluster_codes, cluster_resample_weights

__all__ = ["DEFAULT_RESAMPLES", "Interval", "cluster_codes", "cluster_resample_weights",
           "mean_interval", "not_identified", "percentile_interval", "wilson_interval",
           "wilson_intervals"]
