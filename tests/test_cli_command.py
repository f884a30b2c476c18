"""The ``modprobe`` command: one entry point, one help style, fast ``--help`` everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modprobe import cli
from modprobe.commands import COMMANDS, build_parser, command_module

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

#: Every subcommand path whose --help a user can ask for.
HELP_PATHS = [[name] for name in COMMANDS] + [
    ["data", "colors"], ["data", "validate"], ["data", "tasks"], ["data", "validate-tasks"],
    ["bench", "capture"], ["bench", "finetune"], ["organism", "train"],
    ["interference", "compare"]]
#: Modules a parser must not need (each costs seconds to import).
HEAVY = ("torch", "transformers", "pandas", "scipy", "matplotlib", "nnsight", "peft")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, check=False,
                          cwd=ROOT, timeout=120)


def test_top_level_help_lists_every_subcommand() -> None:
    done = _run("-m", "modprobe", "--help")
    assert done.returncode == 0, done.stderr
    for name in COMMANDS:
        assert f"\n    {name}" in done.stdout, name
    assert "exit codes: 0 done; 2 bad input" in done.stdout
    nothing = _run("-m", "modprobe")
    assert nothing.returncode == cli.EXIT_BAD_INPUT and "COMMAND" in nothing.stderr


@pytest.mark.parametrize("path", HELP_PATHS, ids=" ".join)
def test_help_is_fast_and_in_one_style(path: list[str]) -> None:
    """--help under 1 s (the fastest of 3 fresh processes: what the code costs, not what
    a loaded machine adds) with the shared options and epilog."""
    times, done = [], None
    for _ in range(3):
        start = time.perf_counter()
        done = _run("-m", "modprobe", *path, "--help")
        times.append(time.perf_counter() - start)
    assert done is not None and done.returncode == 0, done.stderr
    assert min(times) < 1.0, (path, times)
    out = done.stdout
    assert out.startswith(f"usage: modprobe {' '.join(path)} "), out[:80]
    assert "exit codes: 0 done" in out and "--debug" in out
    if re.search(r"^\s+--out\b", out, re.MULTILINE):  # a shared option reads the same everywhere
        assert re.search(r"^\s+--out OUT\b", out, re.MULTILINE)


def test_parsers_import_no_heavy_module() -> None:
    """Laziness itself (the timing above could pass on a fast machine): no heavy imports."""
    code = ("import sys, json\nfrom modprobe.commands import COMMANDS, command_module\n"
            "for name in COMMANDS: command_module(name).build_parser()\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    done = _run("-c", code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_shared_options_mean_the_same_everywhere() -> None:
    """--seed, --bootstrap (alias --n-bootstrap), --dtype parse alike in every command."""
    seen = 0
    for name in COMMANDS:
        parser = command_module(name).build_parser()
        actions = {o: a for a in parser._actions for o in a.option_strings}
        if "--bootstrap" in actions:
            assert actions["--n-bootstrap"] is actions["--bootstrap"]
            assert actions["--bootstrap"].type is cli.positive_int
            seen += 1
        if "--dtype" in actions:
            assert actions["--dtype"].type is cli.dtype_name
    assert seen >= 5


def test_defaults_repeated_for_fast_help_match_the_library() -> None:
    from modprobe.analysis.following import law, report
    from modprobe.analysis.sabotage import analysis as sabotage
    from modprobe.analysis.sabotage import input as sabotage_input
    from modprobe.analysis.sabotage import runs as sabotage_runs
    from modprobe.bench import variants
    from modprobe.commands import bench, data, finetune_demo, following, options, organism, tiny
    from modprobe.commands import sabotage as sabotage_command
    from modprobe.data import generate, schema
    from modprobe.finetune.demo import VARIANTS, DemoConfig
    from modprobe.organism.config import OrganismConfig
    from modprobe.stats import DEFAULT_RESAMPLES
    from modprobe.testing.tiny import FAMILIES, TEXT_DEFAULTS

    assert options.DEFAULT_RESAMPLES == DEFAULT_RESAMPLES
    assert (following.ESTIMATES, following.AUTO) == (law.ESTIMATES, report.AUTO)
    assert (sabotage_command.TAU, sabotage_command.SCALES) == (sabotage.TAU, sabotage_input.SCALES)
    assert (sabotage_command.GOLDS, sabotage_command.SCORES) == (sabotage_runs.GOLDS,
                                                                 sabotage_runs.SCORES)
    assert (data.VARIANTS, data.GROUPS) == (generate.VARIANTS, schema.GROUPS)
    assert bench.VARIANTS == variants.VARIANTS
    assert (tiny.FAMILIES, tiny.LAYERS) == (FAMILIES, TEXT_DEFAULTS["num_hidden_layers"])
    assert finetune_demo.VARIANTS == VARIANTS
    from modprobe.commands import interference
    from modprobe.perturb import DEFAULT_TEXT_BASELINE, TEXT_BASELINES
    from modprobe.study.interference import InterferenceConfig

    assert (interference.TEXT_BASELINES, interference.DEFAULT_TEXT_BASELINE) == (
        TEXT_BASELINES, DEFAULT_TEXT_BASELINE)
    assert interference.DRAWS == InterferenceConfig.draws
    assert InterferenceConfig.text_baseline == DEFAULT_TEXT_BASELINE
    assert finetune_demo.DEFAULTS == {k: getattr(DemoConfig, k) for k in finetune_demo.DEFAULTS}
    config = OrganismConfig()
    assert organism.DEFAULTS == {k: getattr(config, k) for k in organism.DEFAULTS}


@pytest.mark.parametrize("module", ["modprobe.layers", "modprobe.following",
                                    "modprobe.interference", "modprobe.sabotage",
                                    "modprobe.finetune", "modprobe.data", "modprobe.bench"])
def test_python_m_forms_are_shims_of_the_command(module: str) -> None:
    done = _run("-m", module, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: modprobe ")


@pytest.mark.parametrize("module", ["modprobe.bench.geometry", "modprobe.bench.child"])
def test_internal_modules_say_so_without_a_traceback(module: str) -> None:
    done = _run("-m", module, "--help")
    assert done.returncode == 0
    assert "internal" in done.stderr and "Traceback" not in done.stderr


def test_unknown_subcommand_is_a_usage_error() -> None:
    assert build_parser().prog == "modprobe"
    done = _run("-m", "modprobe", "nosuch")
    assert done.returncode == cli.EXIT_BAD_INPUT and "invalid choice" in done.stderr
