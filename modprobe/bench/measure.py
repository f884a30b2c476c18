"""Timing and peak-memory measurement of one prepared variant, inside its own process.

Peak memory on CPU is invisible to ``tracemalloc`` (torch allocates outside Python's
allocator), so it is measured as growth of the process's peak resident set size:
``ru_maxrss`` after the runs minus ``ru_maxrss`` after loading the model and building
the inputs, before the first run. Loading has its own, often higher, peak; so on Linux
the peak is first reset to the current RSS (``echo 5 > /proc/self/clear_refs``), which
makes the baseline the resident size of the loaded process. Before that, garbage is
collected and glibc is asked to return freed heap pages (``malloc_trim(0)``): otherwise
a run could reuse memory that loading freed but the process kept, and its growth would
read too low (by up to the loading temporaries' size, the same for every variant). On CUDA it is
``torch.cuda.max_memory_allocated`` growth over ``memory_allocated`` at the same point.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import statistics
import time
from dataclasses import dataclass, field

import torch

from modprobe.bench.variants import PreparedVariant

_CLEAR_REFS = "/proc/self/clear_refs"
#: ``clear_refs`` code that resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
_RESET_PEAK_RSS = "5"


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS; False where the OS does not allow it."""
    try:
        with open(_CLEAR_REFS, "w") as handle:
            handle.write(_RESET_PEAK_RSS)
    except OSError:
        return False
    return True


def release_free_memory() -> bool:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``).

    Returns:
        Whether ``malloc_trim`` was available (glibc only).
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class VariantMeasurement:
    """What one process measured for one variant.

    Attributes:
        times_s: Wall time of each timed run (the warm-up excluded).
        peak_growth_bytes: Peak memory during the timed runs minus the memory before them
            (measured after the warm-up: what each run needs).
        first_run_growth_bytes: Peak growth of the warm-up, the first run after loading,
            which also pays one-off costs that stay (nnsight's instrumented code, caches).
        baseline_bytes: The memory before them (RSS of the loaded process, or CUDA allocated).
        peak_was_reset: Whether the loading peak was cleared first (CPU); if not, the
            growth is understated by however much loading peaked above the baseline.
    """

    times_s: list[float] = field(default_factory=list)
    peak_growth_bytes: int = 0
    first_run_growth_bytes: int = 0
    baseline_bytes: int = 0
    peak_was_reset: bool = True

    @property
    def median_s(self) -> float:
        """Median wall time of the timed runs."""
        return statistics.median(self.times_s)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_variant(prepared: PreparedVariant, repeats: int, device: str) -> VariantMeasurement:
    """One warm-up run, then ``repeats`` timed runs.

    The warm-up pays one-off costs (nnsight's source parsing, allocator growth, lazy
    imports); its growth is reported apart. Time and peak memory are those of the
    timed runs: the peak is reset after the warm-up, as ``reset_peak_memory_stats``
    would be on CUDA, so the figure is what a run needs, not what loading left behind.

    Args:
        prepared: The variant, ready to run.
        repeats: Timed runs after the warm-up.
        device: ``"cpu"`` or a CUDA device (how peaks are read).

    Returns:
        The times, the timed runs' peak growth and the warm-up's growth.
    """
    release_free_memory()
    on_cuda = device.startswith("cuda")
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        was_reset = True
    else:
        was_reset = reset_peak_rss()
        baseline = peak_rss_bytes()
    result = VariantMeasurement(baseline_bytes=baseline, peak_was_reset=was_reset)

    prepared.run()
    _synchronize(device)
    first = torch.cuda.max_memory_allocated() if on_cuda else peak_rss_bytes()
    result.first_run_growth_bytes = max(0, first - baseline)
    release_free_memory()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        result.peak_was_reset &= reset_peak_rss()
        baseline = peak_rss_bytes()
    result.baseline_bytes = baseline
    for _ in range(repeats):
        start = time.perf_counter()
        output = prepared.run()
        _synchronize(device)
        result.times_s.append(time.perf_counter() - start)
        del output
    peak = torch.cuda.max_memory_allocated() if on_cuda else peak_rss_bytes()
    result.peak_growth_bytes = max(0, peak - baseline)
    return result


def measure_paired(prepared: list[PreparedVariant], repeats: int, device: str
                   ) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Time and measure several variants run by run, alternating, in one process.

    Machine load that changes over seconds falls on neighbouring runs of every variant
    alike, so ratios of paired runs are far steadier than ratios of separate processes'
    medians on a shared machine. Each repetition rotates the order by one. Before every
    run the peak is reset (CPU: ``release_free_memory`` + ``clear_refs``; CUDA:
    ``reset_peak_memory_stats``), so each run's peak growth is its own, read in the same
    process as its neighbour's: separate processes differ by a MiB or two on their own.

    Args:
        prepared: The variants, ready to run.
        repeats: Timed runs of each, after one warm-up each.
        device: ``"cpu"`` or a CUDA device.

    Returns:
        Variant name -> wall time of each timed run, and -> peak growth (bytes) of each.
    """
    for variant in prepared:
        variant.run()
    _synchronize(device)
    times: dict[str, list[float]] = {variant.name: [] for variant in prepared}
    growths: dict[str, list[int]] = {variant.name: [] for variant in prepared}
    on_cuda = device.startswith("cuda")
    for repetition in range(repeats):
        shift = repetition % len(prepared)
        for variant in [*prepared[shift:], *prepared[:shift]]:
            release_free_memory()
            if on_cuda:
                torch.cuda.reset_peak_memory_stats()
                baseline = torch.cuda.memory_allocated()
            else:
                reset_peak_rss()
                baseline = peak_rss_bytes()
            start = time.perf_counter()
            output = variant.run()
            _synchronize(device)
            times[variant.name].append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated() if on_cuda else peak_rss_bytes()
            growths[variant.name].append(max(0, peak - baseline))
            del output
    return times, growths
