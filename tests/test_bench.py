"""Smoke tests of ``python -m modprobe.bench capture`` (format only, no timing assertions)."""

from __future__ import annotations

import re

import pytest

from modprobe.bench.__main__ import main
from modprobe.bench.capture import (
    CaptureBenchOptions,
    CaptureBenchReport,
    VariantSummary,
    round_order,
)
from modprobe.bench.child import ChildResult, is_out_of_memory
from modprobe.bench.geometry import BenchGeometry

_NUMBER = r"\d+\.\d\d"
LAST_LINE = re.compile(
    rf"^capture/bare time={_NUMBER} mem={_NUMBER}; naive/capture time={_NUMBER} mem={_NUMBER}$")


def test_tiny_geometry_prints_the_ratios_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["capture", "--layers", "2", "--heads", "4", "--hidden", "32", "--tokens", "40",
                 "--repeats", "1", "--rounds", "1", "--pairs", "2", "--variants", "bare,capture,naive",
                 "--inline"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert "| capture | ok |" in "\n".join(lines)


def test_geometry_matches_llava() -> None:
    llava = BenchGeometry()
    assert (llava.image_tokens, llava.head_dim, llava.vocab) == (576, 8, 32064)
    assert BenchGeometry(tokens=2900).image_tokens == 53**2


def test_out_of_memory_naive_is_reported_as_such() -> None:
    options = CaptureBenchOptions(geometry=BenchGeometry(tokens=2900))
    summaries = {name: VariantSummary(name) for name in ("bare", "capture", "naive")}
    summaries["bare"].add(ChildResult("bare", "ok", times_s=[2.0], peak_growth_bytes=100))
    summaries["capture"].add(ChildResult("capture", "ok", times_s=[2.2], peak_growth_bytes=110))
    summaries["naive"].add(ChildResult("naive", "oom", reason="can't allocate memory"))
    report = CaptureBenchReport(options, summaries, mem_limit_bytes=16 * 1024**3)
    assert report.last_line() == (
        "capture/bare time=1.10 mem=1.10; naive/capture time=OOM at 16.0 GB mem=OOM at 16.0 GB")
    assert "| naive | OOM at 16.0 GB |" in report.table()


def test_rounds_rotate_and_oom_is_recognised() -> None:
    assert round_order(("a", "b", "c"), 1) == ["b", "c", "a"]
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: 8 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_model_is_built_in_a_child_process(tmp_path) -> None:
    import modprobe
    from modprobe.bench.capture import build_model
    from modprobe.bench.geometry import main as geometry_main

    geometry = BenchGeometry(layers=2, heads=4, hidden=32, tokens=40)
    folder = build_model(CaptureBenchOptions(geometry=geometry), tmp_path / "model")
    loaded = modprobe.load(folder, dtype="float32")
    assert loaded.adapter.num_layers(loaded.module) == 2
    assert geometry_main(["only-one-argument"]) == 2
