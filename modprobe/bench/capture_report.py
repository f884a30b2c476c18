"""The capture benchmark's results: per-variant summaries, ratios, table and verdicts.

:func:`modprobe.bench.capture.run_capture_bench` folds every child's
:class:`~modprobe.bench.child.ChildResult` into a :class:`VariantSummary` and returns a
:class:`CaptureBenchReport`, which prints the table, one verdict per target and the
ratios line.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modprobe.bench.child import ChildResult

if TYPE_CHECKING:
    from modprobe.bench.capture import CaptureBenchOptions

#: Targets of the capture's overhead and of its saving over the naive route.
TARGET_CAPTURE_OVER_BARE_TIME = 1.15
TARGET_CAPTURE_OVER_BARE_MEMORY = 1.2
TARGET_NAIVE_OVER_CAPTURE_MEMORY = 5.0
GIB = 1024**3
MIB = 1024**2


@dataclass
class VariantSummary:
    """All children of one variant, summarised.

    Attributes:
        name: Variant name.
        status: ``"ok"`` or the first non-ok status (``"oom"``, ``"skipped"``, ``"error"``,
            ``"crashed"``).
        times_s: Every timed run of every child.
        peak_growth_bytes: The largest peak growth of its children's timed runs.
        first_run_growth_bytes: The largest growth of its children's warm-up runs.
        peak_was_reset: Whether every child could reset the loading peak first.
        reason: Why it did not run (for a non-ok status).
    """

    name: str
    status: str = "ok"
    times_s: list[float] = field(default_factory=list)
    peak_growth_bytes: int = 0
    first_run_growth_bytes: int = 0
    peak_was_reset: bool = True
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether every child ran and timed runs were made."""
        return self.status == "ok" and bool(self.times_s)

    @property
    def median_s(self) -> float:
        """Median of every timed run of every child."""
        return statistics.median(self.times_s)

    def add(self, result: ChildResult) -> None:
        """Fold one child's result in (a non-ok result ends the variant)."""
        if result.status != "ok":
            self.status, self.reason = result.status, result.reason
            return
        self.times_s.extend(result.times_s)
        self.peak_growth_bytes = max(self.peak_growth_bytes, result.peak_growth_bytes)
        self.first_run_growth_bytes = max(self.first_run_growth_bytes,
                                          result.first_run_growth_bytes)
        self.peak_was_reset &= result.peak_was_reset


@dataclass
class Ratio:
    """One variant's median time and peak growth over another's (None where either failed)."""

    time: float | None
    memory: float | None

    def describe(self, unavailable: str) -> str:
        """``time=X mem=Y`` with two decimals, ``unavailable`` where a ratio is None."""
        time = f"{self.time:.2f}" if self.time is not None else unavailable
        memory = f"{self.memory:.2f}" if self.memory is not None else unavailable
        return f"time={time} mem={memory}"


@dataclass
class CaptureBenchReport:
    """The benchmark's results.

    Attributes:
        options: What was run.
        summaries: Variant name -> summary, in run order.
        mem_limit_bytes: The cap each child ran under (None: uncapped).
    """

    options: CaptureBenchOptions
    summaries: dict[str, VariantSummary]
    mem_limit_bytes: int | None
    paired_times_s: dict[str, list[float]] = field(default_factory=dict)
    paired_growth_bytes: dict[str, list[int]] = field(default_factory=dict)

    def paired_ratios(self, numerator: str, denominator: str) -> list[float]:
        """Time ratios of runs made next to each other in the paired-timing children.

        Args:
            numerator: The variant on top (``capture``).
            denominator: The variant below (``bare``).

        Returns:
            One ratio per pair (empty without paired runs).
        """
        top = self.paired_times_s.get(numerator, [])
        bottom = self.paired_times_s.get(denominator, [])
        return [a / b for a, b in zip(top, bottom)]

    def paired_memory_ratio(self, numerator: str, denominator: str) -> float | None:
        """Median peak growth of one variant's paired runs over the other's.

        Args:
            numerator: The variant on top.
            denominator: The variant below.

        Returns:
            The ratio, or None without paired runs or with a zero median below.
        """
        top = self.paired_growth_bytes.get(numerator, [])
        bottom = self.paired_growth_bytes.get(denominator, [])
        if not top or not bottom or not statistics.median(bottom):
            return None
        return statistics.median(top) / statistics.median(bottom)

    def ratio(self, numerator: str, denominator: str) -> Ratio:
        """Median-time and peak-growth ratios of two variants.

        Time comes from the paired runs where there are some, memory likewise.

        Args:
            numerator: The variant on top.
            denominator: The variant below.

        Returns:
            The ratios; both None when either variant failed.
        """
        top, bottom = self.summaries.get(numerator), self.summaries.get(denominator)
        if top is None or bottom is None or not top.ok or not bottom.ok:
            return Ratio(None, None)
        memory = (top.peak_growth_bytes / bottom.peak_growth_bytes
                  if bottom.peak_growth_bytes else None)
        paired = self.paired_ratios(numerator, denominator)
        time = statistics.median(paired) if paired else top.median_s / bottom.median_s
        paired_memory = self.paired_memory_ratio(numerator, denominator)
        return Ratio(time, paired_memory if paired_memory is not None else memory)

    def status_text(self, summary: VariantSummary) -> str:
        """``ok``, ``OOM at 16.0 GB``, ``skipped: ...``, ``error: ...``."""
        if summary.status == "oom":
            return f"OOM at {self.limit_text()}"
        if summary.status == "ok":
            return "ok" if summary.peak_was_reset else "ok (loading peak not reset)"
        return f"{summary.status}: {summary.reason.splitlines()[0] if summary.reason else ''}"

    def limit_text(self) -> str:
        """The children's memory cap in words (``16.0 GB``, ``no cap``, the device's memory)."""
        if self.mem_limit_bytes is None:
            return "the device's memory" if self.options.device.startswith("cuda") else "no cap"
        return f"{self.mem_limit_bytes / GIB:.1f} GB"

    def table(self) -> str:
        """Markdown table: status, median and range of times, peak memory growth."""
        lines = [("| variant | status | median time (s) | min-max (s) | runs | peak growth (MiB) "
                 "| first-run growth (MiB) |"),
                 "|---|---|---:|---:|---:|---:|---:|"]
        for summary in self.summaries.values():
            if summary.ok:
                times = summary.times_s
                cells = (f"{summary.median_s:.3f}", f"{min(times):.3f}-{max(times):.3f}",
                         str(len(times)), f"{summary.peak_growth_bytes / MIB:.0f}",
                         f"{summary.first_run_growth_bytes / MIB:.0f}")
            else:
                cells = ("-", "-", "0", "-", "-")
            lines.append(f"| {summary.name} | {self.status_text(summary)} | {' | '.join(cells)} |")
        paired = self.paired_ratios("capture", "bare")
        if paired:
            medians = {name: statistics.median(t) for name, t in self.paired_times_s.items()}
            lines.append("")
            lines.append(
                f"paired timing (bare and capture alternating run by run in one process, "
                f"{len(paired)} pairs): bare median {medians['bare']:.3f} s, capture median "
                f"{medians['capture']:.3f} s, capture/bare per pair median "
                f"{statistics.median(paired):.2f} (min {min(paired):.2f}, max {max(paired):.2f}); "
                f"ratio of the separate children's medians "
                f"{self._ratio_of_medians('capture', 'bare')}")
            growth = {name: statistics.median(g) / MIB for name, g in self.paired_growth_bytes.items()}
            memory = self.paired_memory_ratio("capture", "bare")
            if memory is not None:
                lines.append(
                    f"paired memory (peak reset before every run, same process): bare median "
                    f"growth {growth['bare']:.1f} MiB, capture {growth['capture']:.1f} MiB, "
                    f"capture/bare {memory:.2f}; separate children "
                    f"{self._memory_of_children('capture', 'bare')}")
        return "\n".join(lines)

    def _memory_of_children(self, numerator: str, denominator: str) -> str:
        top, bottom = self.summaries.get(numerator), self.summaries.get(denominator)
        if top is None or bottom is None or not bottom.peak_growth_bytes:
            return "n/a"
        return f"{top.peak_growth_bytes / bottom.peak_growth_bytes:.2f}"

    def _ratio_of_medians(self, numerator: str, denominator: str) -> str:
        top, bottom = self.summaries.get(numerator), self.summaries.get(denominator)
        if top is None or bottom is None or not top.ok or not bottom.ok:
            return "n/a"
        return f"{top.median_s / bottom.median_s:.2f}"

    def naive_unavailable(self) -> str:
        """What the ratios line says for a missing naive ratio: the OOM, or ``n/a``."""
        naive = self.summaries.get("naive")
        if naive is not None and naive.status == "oom":
            return f"OOM at {self.limit_text()}"
        return "n/a"

    def last_line(self) -> str:
        """``capture/bare time=X mem=Y; naive/capture time=Z mem=W``."""
        return (f"capture/bare {self.ratio('capture', 'bare').describe('n/a')}; "
                f"naive/capture {self.ratio('naive', 'capture').describe(self.naive_unavailable())}")

    def verdicts(self) -> list[str]:
        """One line per target: met, missed, or not measured."""
        over_bare = self.ratio("capture", "bare")
        naive = self.ratio("naive", "capture")
        naive_oom = self.summaries.get("naive", VariantSummary("naive")).status == "oom"
        checks = [
            ("capture/bare time", over_bare.time, TARGET_CAPTURE_OVER_BARE_TIME, "<="),
            ("capture/bare memory", over_bare.memory, TARGET_CAPTURE_OVER_BARE_MEMORY, "<="),
            ("naive/capture memory", naive.memory, TARGET_NAIVE_OVER_CAPTURE_MEMORY, ">="),
        ]
        lines = []
        for label, value, target, sense in checks:
            if value is None:
                verdict = ("met (naive ran out of memory)" if naive_oom and label.startswith("naive")
                           else "not measured")
            else:
                met = value <= target if sense == "<=" else value >= target
                verdict = f"{value:.2f} {'met' if met else 'MISSED'}"
            lines.append(f"target {label} {sense} {target}: {verdict}")
        return lines
