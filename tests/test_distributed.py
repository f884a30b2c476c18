"""Data-parallel runs: torchrun with 2 gloo processes on CPU gives the tables of one process.

Each torchrun start costs several seconds (two interpreters import torch), so every test
here runs as few of them as it can: one fresh 2-process study, and for each runner one
2-process run in which rank 1 is killed after its first chunk, resumed once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modprobe.data import generate_colors
from modprobe.data.color_tasks import generate_color_tasks
from modprobe.study.distributed import World, current_world
from modprobe.study.driver import Shard
from modprobe.testing import build_tiny

pytestmark = pytest.mark.slow

#: The files of a finished run that must be byte-identical (the manifest holds times).
STUDY_FILES = ("items.parquet", "layers.parquet", "candidates.parquet", "attention.parquet",
               "attention_mass.npy", "oscillation.parquet", "summary.json")
INTERFERENCE_FILES = ("items.parquet", "layers.parquet", "attention.parquet",
                      "attention_mass.npy", "flips.parquet", "attention_shift.parquet",
                      "summary.json")

#: Wraps a runner's CLI so that rank 1 is SIGKILLed right after writing its first chunk
#: (a real kill: no cleanup, no exception handler runs).
KILL_RANK_1 = """
import os, runpy, signal, sys
import modprobe.study.driver as driver
write = driver.write_chunk
def write_then_die(*args, **kwargs):
    write(*args, **kwargs)
    if os.environ.get("RANK") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
driver.write_chunk = write_then_die
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llava", tmp_path_factory.mktemp("llava"), seed=0)


def _env() -> dict[str, str]:
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _torchrun(nproc: int, target: list[str], args: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", *target, *args]
    return subprocess.run(command, check=False, env=_env(), capture_output=True, text=True,
                          timeout=300)


def _single(module: str, args: list[str]) -> None:
    """The reference run: in this process, on one thread (torchrun's default per rank)."""
    import importlib

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert importlib.import_module(module).main(args) == 0
    finally:
        torch.set_num_threads(threads)


def _killed(module: str, args: list[str], tmp_path: Path, chunks: int) -> Path:
    """Run ``module`` with 2 ranks, rank 1 killed after its first chunk; returns --out."""
    script = tmp_path / "kill_rank_1.py"
    script.write_text(KILL_RANK_1)
    done = _torchrun(2, [str(script), module], args)
    assert done.returncode != 0, "the run with a killed rank should have failed"
    out = Path(args[args.index("--out") + 1])
    finished = {int(p.name) for p in (out / "chunks").iterdir() if (p / "items.csv").exists()}
    assert 1 in finished and 3 not in finished, finished  # rank 1 wrote one chunk, died
    assert len(finished) < chunks
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    return out


def _assert_same_files(run: Path, reference: Path, names: tuple[str, ...]) -> None:
    for name in names:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


def test_world_of_one_process_needs_no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = current_world()
    assert (world.rank, world.count, world.is_main) == (0, 1, True)
    assert world.on_main(lambda: {"a": 1}) == {"a": 1}
    assert World(rank=1, count=2, local_rank=1).device("cuda") == "cuda:1"
    assert World(rank=1, count=2, local_rank=1).device("cuda:0") == "cuda:0"
    shards = [World(rank=r, count=3).shard for r in range(3)]
    assert shards[2] == Shard(2, 3)
    # every chunk is taken by exactly one rank
    assert all(sum(s.takes(i) for s in shards) == 1 for i in range(10))


def test_two_process_study_equals_one_process_also_after_a_killed_rank(
        model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_colors(data, groups=2, seed=0, variant="lowres")
    common = ["--model", str(model_dir), "--data", str(data), "--limit", "10",
              "--batch-size", "2", "--bootstrap", "50", "--device", "cpu", "--no-figures"]
    reference = tmp_path / "one"
    _single("modprobe.layers", [*common, "--out", str(reference), "--quiet"])

    fresh = _torchrun(2, ["-m", "modprobe.layers"], [*common, "--out", str(tmp_path / "two")])
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stdout.count("run folder:") == 1  # rank 0 reports, rank 1 is silent
    assert fresh.stderr.count("modprobe.layers:") >= 1
    _assert_same_files(tmp_path / "two", reference, STUDY_FILES)

    # rank 1 killed after its first chunk; resumed with 3 ranks (any number will do)
    killed = _killed("modprobe.layers", [*common, "--out", str(tmp_path / "killed")],
                     tmp_path, chunks=5)
    resumed = _torchrun(3, ["-m", "modprobe.layers"],
                        [*common, "--out", str(killed), "--resume", "--quiet"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_files(killed, reference, STUDY_FILES)
    assert not (killed / "chunks").exists()


def test_two_process_interference_resumes_a_killed_rank_to_one_process_tables(
        model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "tasks"
    generate_color_tasks(data, groups=2, seed=0, variant="lowres", fmt="choice",
                         tiers=[3], text_tiers=[1])
    common = ["--model", str(model_dir), "--data", str(data), "--batch-size", "1",
              "--limit", "6", "--uf-sentences", "1", "--bootstrap", "50", "--device", "cpu",
              "--no-figures", "--quiet"]
    reference = tmp_path / "one"
    _single("modprobe.interference", [*common, "--out", str(reference)])

    killed = _killed("modprobe.interference", [*common, "--out", str(tmp_path / "killed")],
                     tmp_path, chunks=6)
    resumed = _torchrun(2, ["-m", "modprobe.interference"],
                        [*common, "--out", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_files(killed, reference, INTERFERENCE_FILES)


def test_a_refused_run_ends_every_rank_with_the_reason(model_dir: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = _torchrun(2, ["-m", "modprobe.layers"],
                     ["--model", str(model_dir), "--out", str(out), "--device", "cpu"])
    assert done.returncode != 0
    assert "not empty" in done.stderr or "already" in done.stderr, done.stderr[-2000:]
    assert "rank 0 refused the run" in done.stderr  # rank 1 ended with the same reason
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]



def test_study_bench_runs_the_real_commands_and_checks_its_options(tmp_path: Path) -> None:
    from modprobe.bench.study import StudyBenchOptions, command

    options = StudyBenchOptions(limit=8, batch_size=4)
    one = command(options, 1, tmp_path / "a")
    two = command(options, 2, tmp_path / "b")
    assert one[1:3] == ["-m", "modprobe.layers"]
    assert two[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert one[one.index("--limit"):] == two[two.index("--limit"):-1] + [str(tmp_path / "a")]
    with pytest.raises(ValueError, match="no chunk"):
        StudyBenchOptions(limit=4, batch_size=4, processes=2)
    with pytest.raises(ValueError, match="2 or more"):
        StudyBenchOptions(processes=1)
