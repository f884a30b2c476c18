"""``python -m modprobe.bench study``: items per second of a study with 1 and N processes.

Each configuration runs the real command in a fresh process tree and a fresh run folder,
``python -m modprobe.layers`` for one process and ``torchrun --standalone
--nproc-per-node N -m modprobe.layers`` for N, on the same items with the same options
(no figures, few bootstrap replicates: the capture dominates). The rate is items over the
command's whole wall time, start-up and model loading included, so it is what a user
waits for; every process gets ``--threads`` CPU threads. The last line is
``study Nproc/1proc items/s=R``.

On GPUs run ``python -m modprobe.bench study --device cuda``: every rank then takes the
GPU of its local rank (``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modprobe.errors import ModprobeError

Printer = Callable[[str], None]


@dataclass(frozen=True)
class StudyBenchOptions:
    """What the study bench runs.

    Attributes:
        model: The model (alias or folder).
        limit: Items per run.
        batch_size: Items per chunk.
        processes: The data-parallel process count compared with one process.
        threads: CPU threads of every process.
        device: ``cpu`` or ``cuda``.
        timeout_s: Wall-clock limit of one run.
    """

    model: str = "organism"
    limit: int = 48
    batch_size: int = 4
    processes: int = 2
    threads: int = 1
    device: str = "cpu"
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        """Refuse fewer than 2 processes, or too few items to give each a chunk."""
        if self.processes < 2:
            raise ValueError(f"--processes must be 2 or more, got {self.processes}")
        if self.limit < self.processes * self.batch_size:
            raise ValueError(f"--limit {self.limit} gives some of the {self.processes} "
                             f"processes no chunk of --batch-size {self.batch_size}; raise it")


def command(options: StudyBenchOptions, processes: int, out: Path) -> list[str]:
    """The command line of one configuration.

    Args:
        options: Model, items, batch size and device.
        processes: 1 runs the study directly; more launch it with torchrun.
        out: The study's run folder.

    Returns:
        The argv, starting with the Python interpreter.
    """
    study = ["-m", "modprobe.layers", "--model", options.model, "--limit", str(options.limit),
             "--batch-size", str(options.batch_size), "--device", options.device,
             "--bootstrap", "20", "--no-figures", "--quiet", "--out", str(out)]
    if processes == 1:
        return [sys.executable, *study]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={processes}", *study]


def time_run(options: StudyBenchOptions, processes: int, root: Path) -> float:
    """Wall seconds of one run of the study in a fresh folder under ``root``.

    Args:
        options: The benchmark's options (``threads`` per process).
        processes: Processes of the run.
        root: Where the run folder goes.

    Returns:
        The run's wall time in seconds.

    Raises:
        ModprobeError: the run failed (its last error line is repeated).
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(options.threads)}
    start = time.perf_counter()
    done = subprocess.run(command(options, processes, root / f"run{processes}"), env=env,
                          capture_output=True, text=True, timeout=options.timeout_s,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ModprobeError(f"the {processes}-process study failed: "
                            f"{lines[-1] if lines else done.returncode}")
    return seconds


def run_study_bench(options: StudyBenchOptions, out: Printer = print) -> dict[int, float]:
    """Time the study with 1 and ``options.processes`` processes, and print the rates.

    Args:
        options: Model, items, batch size, processes, threads and device.
        out: Where lines go (``print`` by default); the last one is the ratio line.

    Returns:
        Items per second, by number of processes.
    """
    rates: dict[int, float] = {}
    out(f"study bench: {options.model}, {options.limit} items, batch {options.batch_size}, "
        f"{options.threads} thread(s) per process, device {options.device}")
    with tempfile.TemporaryDirectory(prefix="modprobe-bench-study-") as tmp:
        for processes in (1, options.processes):
            seconds = time_run(options, processes, Path(tmp))
            rates[processes] = options.limit / seconds
            out(f"{processes} process{'es' if processes > 1 else ''}: {seconds:.1f} s, "
                f"{rates[processes]:.2f} items/s (start-up and loading included)")
    out(f"study {options.processes}proc/1proc items/s="
        f"{rates[options.processes] / rates[1]:.2f}")
    return rates
