"""Smoke tests of ``python -m modprobe.bench finetune`` (format and bookkeeping, no timing
assertions: speed targets are read from the benchmark's own output)."""

from __future__ import annotations

import re

import pytest

from modprobe.bench.__main__ import main
from modprobe.bench.finetune import (
    FINETUNE_VARIANTS,
    FinetuneBenchOptions,
    ModelResult,
    predicted_ratio,
)

_NUMBER = r"\d+\.\d\d"
LAST_LINE = re.compile(
    rf"^finetune/plain time: calibration={_NUMBER} consistency={_NUMBER} "
    rf"adversarial_k1={_NUMBER} adversarial_k2={_NUMBER}$")


def test_tiny_run_prints_the_ratios_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["finetune", "--models", "organism", "--organism-rows", "2", "--repeats", "1"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert LAST_LINE.match(lines[-1]), lines[-1]
    text = "\n".join(lines)
    for variant in FINETUNE_VARIANTS:
        assert f"| {variant} |" in text
    assert "FLOP prediction 2.50" in text  # K=2 beside its prediction (LoRA)


def test_ratios_are_paired_medians() -> None:
    times = {v: [1.0, 2.0, 4.0] for v in FINETUNE_VARIANTS}
    times["calibration"] = [1.1, 2.2, 4.4]
    times["adversarial_k2"] = [2.5, 5.0, 20.0]  # ratios 2.5, 2.5, 5.0
    growth = {v: [100] * 3 for v in FINETUNE_VARIANTS}
    result = ModelResult("m", "m", times, growth)
    assert result.ratio("calibration") == pytest.approx(1.1)
    assert result.ratio("adversarial_k2") == pytest.approx(2.5)
    assert result.ratios_line() == ("finetune/plain time: calibration=1.10 consistency=1.00 "
                                    "adversarial_k1=1.00 adversarial_k2=2.50")


def test_flop_predictions() -> None:
    # LoRA (backward = one forward): 1 + (2K + 2) / 4; full (backward = 2 forwards): 1 + (2K + 3) / 6
    assert predicted_ratio(2, "lora") == pytest.approx(2.5)
    assert predicted_ratio(1, "lora") == pytest.approx(2.0)
    assert predicted_ratio(2, "full") == pytest.approx(1 + 7 / 6)
    # the paper's count leaves out the ascent steps' backward
    assert predicted_ratio(2, "full", "paper") == pytest.approx(1 + 5 / 6)


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "--models", "organism,gpt"]) == 2
    assert "--models: unknown ['gpt']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--repeats"):
        FinetuneBenchOptions(repeats=0)
