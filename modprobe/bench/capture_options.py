"""What the capture benchmark runs, and what the machine it runs on allows.

:class:`CaptureBenchOptions` says which variants run, how often, on which device and under
which isolation; :func:`effective_memory_limit` lowers the children's address-space cap to
what the machine can spare, and :func:`machine_description` names the machine in the
report's header. :func:`modprobe.bench.capture.run_capture_bench` runs the benchmark.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from modprobe.bench.capture_report import GIB
from modprobe.bench.geometry import BenchGeometry
from modprobe.bench.variants import VARIANTS

#: Memory left to the rest of the machine when the requested cap exceeds what is free.
MEMORY_RESERVE_BYTES = 2 * 1024**3


@dataclass
class CaptureBenchOptions:
    """How to run the benchmark.

    Attributes:
        geometry: Model and batch shape.
        repeats: Timed runs per child process, after one warm-up run.
        rounds: Child processes per variant; each round runs every variant once, in an
            order rotated by one from the previous round.
        variants: Which of :data:`~modprobe.bench.variants.VARIANTS` to run.
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
