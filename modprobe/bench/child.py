"""One benchmark variant in its own process, under a memory cap.

``python -m modprobe.bench.child SPEC.json`` (started by :mod:`modprobe.bench.capture`)
caps its address space first (``RLIMIT_AS``), so that a variant that runs out of memory
fails inside this process with a clean allocation error instead of pushing a shared
machine into swap or the kernel's OOM killer. It then loads the model, measures the
variant (:func:`modprobe.bench.measure.measure_variant`) and writes a JSON result.

Only the standard library is imported before the cap is set.
"""

from __future__ import annotations

import json
import resource
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Substrings of the errors an allocation failure raises (torch's CPU allocator, CUDA,
#: and plain ``MemoryError`` from Python or numpy).
_OOM_MARKERS: tuple[str, ...] = (
    "can't allocate memory", "cannot allocate memory", "not enough memory", "out of memory",
    "std::bad_alloc",
)


@dataclass
class ChildSpec:
    """What one child process runs.

    Attributes:
        variant: Variant name (:data:`modprobe.bench.variants.VARIANTS`).
        folder: The benchmark model's folder.
        geometry: :class:`~modprobe.bench.geometry.BenchGeometry` fields.
        repeats: Timed runs after the warm-up.
        device: ``"cpu"`` or a CUDA device.
        mem_limit_bytes: Address-space cap (CPU only; None: no cap).
        result_path: Where the JSON :class:`ChildResult` goes.
        paired: When not empty, time these variants run by run in this one process
            (:func:`modprobe.bench.measure.measure_paired`) instead of measuring ``variant``.
    """

    variant: str
    folder: str
    geometry: dict[str, int]
    repeats: int
    device: str
    mem_limit_bytes: int | None
    result_path: str
    paired: list[str] = field(default_factory=list)


@dataclass
class ChildResult:
    """What a child reports.

    Attributes:
        variant: Variant name.
        status: ``"ok"``, ``"oom"``, ``"skipped"`` or ``"error"``.
        times_s: Timed runs (status ``"ok"``).
        peak_growth_bytes: Peak memory growth of the timed runs (status ``"ok"``).
        first_run_growth_bytes: Peak memory growth of the warm-up run.
        baseline_bytes: Memory of the loaded process before the runs.
        peak_was_reset: Whether the loading peak was cleared before measuring.
        reason: Why it was skipped, ran out of memory or failed.
        paired_times_s: Variant -> timed runs, for a paired-timing child.
        paired_growth_bytes: Variant -> peak growth of each of those runs.
    """

    variant: str
    status: str
    times_s: list[float] = field(default_factory=list)
    peak_growth_bytes: int = 0
    first_run_growth_bytes: int = 0
    baseline_bytes: int = 0
    peak_was_reset: bool = True
    reason: str = ""
    paired_times_s: dict[str, list[float]] = field(default_factory=dict)
    paired_growth_bytes: dict[str, list[int]] = field(default_factory=dict)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether an exception is an allocation failure."""
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return any(marker in text for marker in _OOM_MARKERS)


def cap_address_space(limit_bytes: int | None) -> None:
    """Lower this process's ``RLIMIT_AS`` to ``limit_bytes`` (never raise it)."""
    if limit_bytes is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))


def run_child(spec: ChildSpec) -> ChildResult:
    """Load, measure and report one variant; never raises for OOM, skips or failures."""
    if not spec.device.startswith("cuda"):
        # CUDA reserves far more address space than it uses, so the cap is CPU-only.
        cap_address_space(spec.mem_limit_bytes)
    try:
        from modprobe.bench.geometry import BenchGeometry
        from modprobe.bench.measure import measure_paired, measure_variant
        from modprobe.bench.variants import VariantSkipped, prepare_variant

        geometry = BenchGeometry(**spec.geometry)
        if spec.paired:
            prepared_list = [prepare_variant(name, spec.folder, geometry, spec.device)
                             for name in spec.paired]
            times, growths = measure_paired(prepared_list, spec.repeats, spec.device)
            return ChildResult(spec.variant, "ok", paired_times_s=times,
                               paired_growth_bytes=growths)
        try:
            prepared = prepare_variant(spec.variant, spec.folder, geometry, spec.device)
        except VariantSkipped as err:
            return ChildResult(spec.variant, "skipped", reason=str(err))
        measured = measure_variant(prepared, spec.repeats, spec.device)
    except Exception as err:  # noqa: BLE001 - the child reports every failure as data
        if is_out_of_memory(err):
            return ChildResult(spec.variant, "oom", reason=_first_line(err))
        return ChildResult(spec.variant, "error",
                           reason=f"{type(err).__name__}: {_first_line(err)}\n{traceback.format_exc()}")
    return ChildResult(spec.variant, "ok", times_s=measured.times_s,
                       peak_growth_bytes=measured.peak_growth_bytes,
                       first_run_growth_bytes=measured.first_run_growth_bytes,
                       baseline_bytes=measured.baseline_bytes,
                       peak_was_reset=measured.peak_was_reset)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the variant of a spec file and write its result (internal: the benchmark calls it).

    Args:
        argv: One argument, the spec file (None reads ``sys.argv``).

    Returns:
        The exit code: 0 when the result was written (or for ``--help``), 2 for any
        other command line.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        # Not a command: the benchmark starts it with a spec file it wrote.
        print("modprobe.bench.child is internal (the capture benchmark runs it with a spec "
              "file); use 'modprobe bench capture --help'", file=sys.stderr)
        return 0 if args in (["-h"], ["--help"]) else 2
    data: dict[str, Any] = json.loads(Path(args[0]).read_text())
    spec = ChildSpec(**data)
    result = run_child(spec)
    Path(spec.result_path).write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
