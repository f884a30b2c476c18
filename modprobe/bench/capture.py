"""``python -m modprobe.bench capture``: what the capture costs, next to its alternatives.

The benchmark builds a model with LLaVA-1.5-7B's attention geometry
(:mod:`modprobe.bench.geometry`), then measures the variants of
:mod:`modprobe.bench.variants` (bare forward, capture, naive eager route, transformer-lens)
each in a fresh child process (:mod:`modprobe.bench.child`) under an address-space cap, so
that a variant running out of memory fails cleanly in its child. Rounds alternate the
order of the variants, so that load from other processes on a shared machine falls on all
of them alike. Time is the median of all timed runs of a variant (warm-up excluded);
memory is the largest peak growth any of its children saw (:mod:`modprobe.bench.measure`).

The last printed line is ``capture/bare time=X mem=Y; naive/capture time=Z mem=W``.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modprobe.bench.capture_report import (
    GIB,
    MIB,
    TARGET_CAPTURE_OVER_BARE_MEMORY,
    TARGET_CAPTURE_OVER_BARE_TIME,
    TARGET_NAIVE_OVER_CAPTURE_MEMORY,
    CaptureBenchReport,
    Ratio,
    VariantSummary,
)
from modprobe.bench.child import ChildResult, ChildSpec
from modprobe.bench.geometry import BenchGeometry
from modprobe.bench.variants import VARIANTS

__all__ = [
    "GIB",
    "MEMORY_RESERVE_BYTES",
    "MIB",
    "PAIRED_VARIANTS",
    "TARGET_CAPTURE_OVER_BARE_MEMORY",
    "TARGET_CAPTURE_OVER_BARE_TIME",
    "TARGET_NAIVE_OVER_CAPTURE_MEMORY",
    "CaptureBenchOptions",
    "CaptureBenchReport",
    "Ratio",
    "VariantSummary",
    "build_model",
    "describe_result",
    "effective_memory_limit",
    "machine_description",
    "pair_ready",
    "round_order",
    "run_capture_bench",
    "run_in_child",
    "run_inline",
    "run_pair",
]

#: Memory left to the rest of the machine when the requested cap exceeds what is free.
MEMORY_RESERVE_BYTES = 2 * 1024**3

Printer = Callable[[str], None]


@dataclass
class CaptureBenchOptions:
    """How to run the benchmark.

    Attributes:
        geometry: Model and batch shape.
        repeats: Timed runs per child process, after one warm-up run.
        rounds: Child processes per variant; each round runs every variant once, in an
            order rotated by one from the previous round.
        variants: Which of :data:`VARIANTS` to run.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``...).
        mem_limit_gb: Address-space cap of each child (CPU only). Lowered to what the
            machine has available minus :data:`MEMORY_RESERVE_BYTES`.
        isolation: ``"process"`` (a child per variant and round, capped) or ``"inline"``
            (everything in this process, uncapped: for quick checks and tests only;
            memory numbers are indicative, and variants whose attention maps alone would
            exceed the cap are skipped).
        timeout_s: Wall-clock limit of one child.
        paired: Also time ``bare`` and ``capture`` run by run, alternating, in one extra
            child per round; ``capture/bare time`` is then the median of those paired
            ratios (steadier than a ratio of medians taken minutes apart on a loaded
            machine).
        pairs: Timed bare/capture pairs of each paired child (after one warm-up each).
            Pairs are cheap next to the children's loading, and single pairs on a shared
            machine scatter by +-20%, so they get more runs than ``repeats``.
    """

    geometry: BenchGeometry = field(default_factory=BenchGeometry)
    repeats: int = 3
    rounds: int = 2
    variants: tuple[str, ...] = VARIANTS
    device: str = "cpu"
    mem_limit_gb: float = 16.0
    isolation: str = "process"
    timeout_s: float = 3600.0
    paired: bool = True
    pairs: int = 8

    def __post_init__(self) -> None:
        """Refuse unknown variants, an unknown isolation and counts below 1."""
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; use some of {', '.join(VARIANTS)}")
        if self.isolation not in ("process", "inline"):
            raise ValueError(f"isolation must be 'process' or 'inline', not {self.isolation!r}")
        if self.repeats < 1 or self.rounds < 1 or self.pairs < 1:
            raise ValueError("repeats, rounds and pairs must be at least 1")


def effective_memory_limit(requested_gb: float, device: str) -> int | None:
    """The children's address-space cap: the request, lowered to what the machine can spare.

    Args:
        requested_gb: The cap asked for, in GiB.
        device: The benchmark's device; CUDA runs are not capped.

    Returns:
        The cap in bytes (at most the free memory minus :data:`MEMORY_RESERVE_BYTES`, at
        least 1 GiB), or None on CUDA.
    """
    if device.startswith("cuda"):
        return None
    limit = int(requested_gb * GIB)
    available = _mem_available_bytes()
    if available is not None:
        limit = min(limit, max(available - MEMORY_RESERVE_BYTES, GIB))
    return limit


def _mem_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def machine_description(device: str) -> str:
    """CPU count, load average and torch build, for the report's header."""
    import torch

    parts = [f"{platform.machine()} {os.cpu_count()} CPUs", f"torch {torch.__version__}",
             f"{torch.get_num_threads()} torch threads"]
    if hasattr(os, "getloadavg"):
        parts.append("load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    if device.startswith("cuda") and torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(device))
    return ", ".join(parts)


def round_order(variants: tuple[str, ...], round_index: int) -> list[str]:
    """The variants of one round, rotated by ``round_index`` so each leads once in turn.

    Args:
        variants: The variants, in their first round's order.
        round_index: The round, from 0.

    Returns:
        The round's order.
    """
    shift = round_index % len(variants)
    return [*variants[shift:], *variants[:shift]]


def run_in_child(spec: ChildSpec, timeout_s: float) -> ChildResult:
    """Run one variant in a fresh ``python -m modprobe.bench.child`` process.

    Args:
        spec: What the child runs; written beside ``spec.result_path``.
        timeout_s: Wall-clock limit of the child.

    Returns:
        The child's result, or an ``error`` / ``crashed`` result saying why it has none.
    """
    spec_path = Path(spec.result_path).with_suffix(".spec.json")
    spec_path.write_text(json.dumps(asdict(spec)))
    Path(spec.result_path).unlink(missing_ok=True)
    # glibc keeps freed blocks below its mmap threshold in the heap, so a child's peak RSS
    # then depends on fragmentation, not on what the variant keeps alive (runs of the same
    # variant varied 14-37 MiB). A fixed threshold returns every block >= 64 KiB to the
    # OS on free, so peak RSS growth tracks live tensor bytes, as max_memory_allocated
    # does on CUDA. 64 KiB, not 128: a vocabulary row of LLaVA's lens (32064 float32 =
    # 125 KiB) falls just under 128 KiB and fragmented the heap by ~8 MiB per capture.
    # Every variant runs under the same setting.
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "MALLOC_MMAP_THRESHOLD_": "65536"}
    try:
        done = subprocess.run([sys.executable, "-m", "modprobe.bench.child", str(spec_path)],
                              check=False, capture_output=True, text=True, timeout=timeout_s,
                              env=env)
    except subprocess.TimeoutExpired:
        return ChildResult(spec.variant, "error", reason=f"timed out after {timeout_s:.0f} s")
    result_path = Path(spec.result_path)
    if done.returncode == 0 and result_path.is_file():
        return ChildResult(**json.loads(result_path.read_text()))
    tail = (done.stderr or "").strip().splitlines()[-5:]
    if done.returncode < 0:
        # An allocation failure in C code that does not check malloc ends in a signal.
        why = f"killed by signal {-done.returncode}"
        if spec.mem_limit_bytes is not None:
            why += f" under a {spec.mem_limit_bytes / GIB:.1f} GB cap (likely out of memory)"
        return ChildResult(spec.variant, "crashed", reason=why)
    return ChildResult(spec.variant, "error",
                       reason=f"exit status {done.returncode}: {' | '.join(tail)}")


def run_inline(variant: str, folder: Path, options: CaptureBenchOptions,
               limit_bytes: int | None) -> ChildResult:
    """Run one variant in this process (no cap: refuse what would not fit under it).

    Args:
        variant: The variant's name.
        folder: The benchmark model's folder.
        options: Geometry, repeats and device.
        limit_bytes: The cap a child would have had; ``naive`` and ``tl`` are skipped when
            their attention maps alone exceed it.

    Returns:
        The result, ``ok``, ``skipped`` or ``oom``.
    """
    from modprobe.bench.child import is_out_of_memory
    from modprobe.bench.measure import measure_variant
    from modprobe.bench.variants import VariantSkipped, prepare_variant

    geometry = options.geometry
    if variant in ("naive", "tl") and limit_bytes is not None:
        maps = 4 * geometry.batch * geometry.layers * geometry.heads * geometry.tokens**2
        if maps > limit_bytes:
            return ChildResult(variant, "skipped", reason=(
                f"its attention maps alone need {maps / GIB:.1f} GB, over the "
                f"{limit_bytes / GIB:.1f} GB cap, and inline runs are not capped"))
    try:
        prepared = prepare_variant(variant, folder, geometry, options.device)
        measured = measure_variant(prepared, options.repeats, options.device)
    except VariantSkipped as err:
        return ChildResult(variant, "skipped", reason=str(err))
    except Exception as err:
        if is_out_of_memory(err):
            return ChildResult(variant, "oom", reason=str(err).splitlines()[0])
        raise
    finally:
        gc.collect()
    return ChildResult(variant, "ok", times_s=measured.times_s,
                       peak_growth_bytes=measured.peak_growth_bytes,
                       first_run_growth_bytes=measured.first_run_growth_bytes,
                       baseline_bytes=measured.baseline_bytes,
                       peak_was_reset=measured.peak_was_reset)


#: The variants the paired-timing child alternates.
PAIRED_VARIANTS: tuple[str, ...] = ("bare", "capture")


def pair_ready(options: CaptureBenchOptions, summaries: dict[str, VariantSummary]) -> bool:
    """Whether to run a paired-timing child: asked for, and both variants run fine alone.

    Args:
        options: The benchmark's options (``paired``).
        summaries: The variants' summaries so far.

    Returns:
        True when ``bare`` and ``capture`` have both run without failing.
    """
    return options.paired and all(
        name in summaries and summaries[name].status == "ok" for name in PAIRED_VARIANTS)


def run_pair(folder: Path, tmp: Path, options: CaptureBenchOptions, limit: int | None,
             round_index: int) -> ChildResult:
    """Time bare and capture alternating run by run in one process.

    Args:
        folder: The benchmark model's folder.
        tmp: Where the child's spec and result files go.
        options: The benchmark's options (``pairs``, isolation, device, timeout).
        limit: The child's address-space cap (None: uncapped).
        round_index: The round (names the result file).

    Returns:
        The child's result with ``paired_times_s`` and ``paired_growth_bytes``.
    """
    label = "+".join(PAIRED_VARIANTS)
    if options.isolation == "inline":
        from modprobe.bench.measure import measure_paired
        from modprobe.bench.variants import prepare_variant

        prepared = [prepare_variant(name, folder, options.geometry, options.device)
                    for name in PAIRED_VARIANTS]
        times, growths = measure_paired(prepared, options.pairs, options.device)
        del prepared
        gc.collect()
        return ChildResult(label, "ok", paired_times_s=times, paired_growth_bytes=growths)
    spec = ChildSpec(variant=label, folder=str(folder), geometry=asdict(options.geometry),
                     repeats=options.pairs, device=options.device, mem_limit_bytes=limit,
                     result_path=str(tmp / f"paired-{round_index}.json"),
                     paired=list(PAIRED_VARIANTS))
    return run_in_child(spec, options.timeout_s)


def describe_result(result: ChildResult, round_index: int, rounds: int) -> str:
    """One progress line for a finished child.

    Args:
        result: The child's result.
        round_index: Its round, from 0.
        rounds: How many rounds there are.

    Returns:
        ``[round i/n] variant: status`` and the median time and peak growth, or the reason.
    """
    head = f"[round {round_index + 1}/{rounds}] {result.variant}: {result.status}"
    if result.status == "ok" and result.paired_times_s:
        medians = ", ".join(f"{name} median {statistics.median(times):.3f} s"
                            for name, times in result.paired_times_s.items())
        return f"{head}, paired runs: {medians}"
    if result.status == "ok":
        return (f"{head}, median {statistics.median(result.times_s):.3f} s over "
                f"{len(result.times_s)} runs, peak growth {result.peak_growth_bytes / MIB:.0f} MiB "
                f"(baseline RSS {result.baseline_bytes / MIB:.0f} MiB)")
    return f"{head} ({result.reason.splitlines()[0] if result.reason else 'no reason given'})"


def build_model(options: CaptureBenchOptions, folder: Path) -> Path:
    """Write the benchmark model into ``folder``, in a child process unless inline.

    Children that load a model written by a process that is still alive read their
    peak RSS wrongly: at hidden 1024 every separate child reported a growth of 0 MiB
    (the same children read 35 MiB once the writer had exited), so the parent never
    writes the model itself. It also never holds the weights while children run.

    Args:
        options: The benchmark's options (geometry, isolation, timeout).
        folder: Where the model goes.

    Returns:
        ``folder``.
    """
    from modprobe.bench.geometry import build_bench_model

    if options.isolation == "inline":
        build_bench_model(options.geometry, folder)
        gc.collect()
        return folder
    done = subprocess.run(
        [sys.executable, "-m", "modprobe.bench.geometry", str(folder),
         json.dumps(asdict(options.geometry))],
        check=False, capture_output=True, text=True, timeout=options.timeout_s)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or "").strip().splitlines()[-5:])
        raise RuntimeError(f"building the benchmark model failed ({done.returncode}): {tail}")
    return folder


def run_capture_bench(options: CaptureBenchOptions, out: Printer = print) -> CaptureBenchReport:
    """Build the benchmark model, run every variant, print the report and return it.

    Args:
        options: What to run.
        out: Where lines go (``print`` by default); the last one is the ratios line.
    """
    limit = effective_memory_limit(options.mem_limit_gb, options.device)
    out(f"model: {options.geometry.describe()}")
    out(f"device: {options.device}; machine: {machine_description(options.device)}")
    cap = "none (CUDA)" if limit is None else f"{limit / GIB:.1f} GB address space per child"
    if limit is not None and limit < int(options.mem_limit_gb * GIB):
        cap += f" (lowered from {options.mem_limit_gb:g} GB to leave the machine room)"
    out(f"isolation: {options.isolation}; memory cap: {cap}; "
        f"{options.rounds} rounds x {options.repeats} timed runs after a warm-up"
        + (f", plus {options.pairs} paired bare/capture runs per round" if options.paired else ""))

    summaries = {name: VariantSummary(name) for name in options.variants}
    paired_times: dict[str, list[float]] = {}
    paired_growth: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="modprobe-bench-") as tmp:
        folder = build_model(options, Path(tmp) / "model")
        for round_index in range(options.rounds):
            for variant in round_order(options.variants, round_index):
                summary = summaries[variant]
                if summary.status != "ok":
                    continue  # it ran out of memory, was skipped or failed: once is enough
                if options.isolation == "inline":
                    result = run_inline(variant, folder, options, limit)
                else:
                    spec = ChildSpec(
                        variant=variant, folder=str(folder), geometry=asdict(options.geometry),
                        repeats=options.repeats, device=options.device, mem_limit_bytes=limit,
                        result_path=str(Path(tmp) / f"{variant}-{round_index}.json"))
                    result = run_in_child(spec, options.timeout_s)
                out(describe_result(result, round_index, options.rounds))
                summary.add(result)
            if pair_ready(options, summaries):
                pair = run_pair(folder, Path(tmp), options, limit, round_index)
                out(describe_result(pair, round_index, options.rounds))
                for name, times in pair.paired_times_s.items():
                    paired_times.setdefault(name, []).extend(times)
                for name, growths in pair.paired_growth_bytes.items():
                    paired_growth.setdefault(name, []).extend(growths)

    report = CaptureBenchReport(options=options, summaries=summaries, mem_limit_bytes=limit,
                                paired_times_s=paired_times, paired_growth_bytes=paired_growth)
    out("")
    out(report.table())
    out("")
    for line in report.verdicts():
        out(line)
    out(report.last_line())
    return report
