"""Shared statistics: intervals, resampling, logistic and monotone fits, binning, fit tests.

Every analysis of modprobe (following, the law, oscillation, interference, sabotage,
fine-tuning reports) takes its intervals and resampling from here, so one choice governs
them all. Definitions and the choices made: docs/science.md.

```python
from modprobe.stats import mean_interval
acc = mean_interval(correct, table["cluster"], kind="rate")  # Interval(estimate, low, ...)
print(acc.format())                                         # 0.812 ci=[0.741, 0.870]
```

Modules: `intervals` (Interval, `mean_interval` by declared kind, Wilson, bootstrap
intervals with Monte Carlo error), `cluster_rate` (Korn-Graubard rates, MOVER paired
differences), `cluster_mean` (studentised cluster bootstrap of continuous means),
`resample` (item and cluster bootstrap weights), `logistic` (batched weighted IRLS),
`monotone` (isotonic fit, its crossing, the cluster-robust trend test), `binning`
(display bins), `gof` (Hosmer-Lemeshow, cluster-aware), `signflip` (exact cluster
sign-flip p-values for paired differences).
"""

from modprobe.stats.gof import GoodnessOfFit, hosmer_lemeshow
from modprobe.stats.intervals import (
    DEFAULT_RESAMPLES,
    Interval,
    bootstrap_interval,
    mean_interval,
    not_identified,
    percentile_interval,
    quantile_mc_error,
    wilson_interval,
    wilson_intervals,
)
from modprobe.stats.monotone import IsotonicFit, TrendTest, fit_isotonic, trend_test
from modprobe.stats.resample import cluster_codes, cluster_resample_weights, resample_weights
from modprobe.stats.signflip import sign_flip_p

__all__ = ["DEFAULT_RESAMPLES", "GoodnessOfFit", "Interval", "IsotonicFit", "TrendTest",
           "bootstrap_interval", "cluster_codes", "cluster_resample_weights", "fit_isotonic",
           "hosmer_lemeshow", "mean_interval", "not_identified", "percentile_interval",
           "quantile_mc_error", "resample_weights", "sign_flip_p", "trend_test", "wilson_interval",
           "wilson_intervals"]
