"""Benchmarks: ``python -m modprobe.bench capture`` (see ``docs/performance.md``).

The capture benchmark times modprobe's capture against a bare forward pass, the naive
eager route and transformer-lens on a model with LLaVA-1.5-7B's attention geometry, each
variant in its own memory-capped process (:mod:`modprobe.bench.capture`).

Nothing here is imported by ``import modprobe``; this package imports no torch until a
benchmark runs (child processes cap their memory before importing it).
"""
