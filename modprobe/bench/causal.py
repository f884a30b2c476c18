"""Cost of the causal sweeps relative to one capture, on the benchmark geometry.

A knockout sweep runs one forward per layer (the answer position's attention to the image
span blocked at that layer) plus the clean forward; a patching sweep reads the source's
residual stream once, then runs one patched forward per layer. Both are compared with one
capture (logit lens + attention mass, all layers) of the same batch, timed alternately in
one process (medians). The last line is ``knockout sweep/capture time=X (L layers);
patching sweep/capture time=Y``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from modprobe.bench.geometry import BenchGeometry, bench_batch, build_bench_model


@dataclass(frozen=True)
class CausalBenchOptions:
    """Geometry, timed repeats and device of the causal benchmark."""

    geometry: BenchGeometry
    repeats: int = 3
    device: str = "cpu"


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_causal_bench(options: CausalBenchOptions) -> dict[str, float]:
    """Time one capture, a knockout sweep and a patching sweep over all layers; print them.

    Returns:
        ``{"capture": s, "knockout_sweep": s, "patching_sweep": s}`` median seconds.
    """
    import modprobe
    from modprobe.capture import capture
    from modprobe.capture.interventions import clean_logits, knockout, patch

    geometry = options.geometry
    with tempfile.TemporaryDirectory() as folder:
        loaded = modprobe.load(build_bench_model(geometry, folder), dtype="float32",
                               device=options.device)
        batch = bench_batch(loaded, geometry)
        layers = list(range(geometry.layers))
        positions = loaded.spans(batch).answer_positions()

        def sweep() -> None:
            base = clean_logits(loaded, batch, positions)
            for layer in layers:
                knockout(loaded, batch, span="image", layers=[layer], clean=base)

        timings = {
            "capture": _median_seconds(lambda: capture(loaded, batch), options.repeats),
            "knockout_sweep": _median_seconds(sweep, options.repeats),
            "patching_sweep": _median_seconds(
                lambda: patch(loaded, batch, batch, layers=layers, site="answer"),
                options.repeats),
        }
    print(f"model: {geometry.describe()}")
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.3f} s (median of {options.repeats})")
    print(f"knockout sweep/capture time={timings['knockout_sweep'] / timings['capture']:.2f} "
          f"({geometry.layers} layers); patching sweep/capture "
          f"time={timings['patching_sweep'] / timings['capture']:.2f}")
    return timings
