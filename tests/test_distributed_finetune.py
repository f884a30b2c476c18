"""Data-parallel fine-tuning: torchrun with 2 gloo processes on CPU.

"Same global batch": a step's global batch is micro-batches ``0 .. processes*grad_accum-1``,
each drawn from ``(seed, step, index)`` alone, so 2 processes with ``--grad-accum 1`` train
on exactly the batches of 1 process with ``--grad-accum 2``. The averaged gradient then
equals the single-process gradient up to the order of float additions (two backward passes
accumulated in place vs one all-reduce of two gradients), so the loss curves agree to about
1e-6 (float32 rounding, grown over a few Adam steps); 1e-4 leaves room for that and is still
far below what a different batch gives (the organism's loss moves by 1e-2 to 1e-1 between
batches, checked in the test itself).

Each torchrun start costs several seconds (two interpreters import torch and load the
organism), so the tests run as few of them as they can.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import modprobe
from modprobe.data.color_tasks import generate_color_tasks
from modprobe.data.tasks import load_tasks, write_tasks

pytestmark = pytest.mark.slow

STEPS = 4
#: Loss curves of 1 and 2 processes with the same global batch agree within this (see above).
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The color world's tasks, lowres, open answers (the organism's format): 2 groups."""
    root = tmp_path_factory.mktemp("tasks")
    generate_color_tasks(root, groups=2, seed=0, variant="lowres", fmt="open")
    if "context" not in modprobe.SPAN_NAMES:  # as in test_finetune_trainer
        loaded = load_tasks(root)
        write_tasks(root, [it for it in loaded.items if it.relevant == "image"], loaded.info)
    return root


def _env() -> dict[str, str]:
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _args(out: Path, data: Path, grad_accum: int) -> list[str]:
    return ["--model", "organism", "--data", str(data), "--out", str(out),
            "--steps", str(STEPS), "--batch-size", "4", "--grad-accum", str(grad_accum),
            "--lr", "1e-2", "--threads", "1", "--checkpoint-every", "2", "--holdout", "0",
            "--perturb", "MD,RP", "--calibration", "1", "--quiet"]


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node=2", "-m", "modprobe.finetune", *args]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, check=False, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _log(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "log.csv")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "adapter_model.safetensors"))


def test_two_processes_follow_the_one_process_loss_curve(tasks_dir: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    _run([sys.executable, "-m", "modprobe.finetune", *_args(one, tasks_dir, grad_accum=2)])
    two = tmp_path / "two"
    _run(_torchrun(_args(two, tasks_dir, grad_accum=1)))

    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["status"] == "complete"
    # one process wrote the folder: one checkpoint per checkpoint step, one model
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == sorted(
        p.name for p in (one / "checkpoints").iterdir())
    assert len(_log(two)) == STEPS

    columns = ["loss", "answer", "calibration"]
    got, want = _log(two)[columns], _log(one)[columns]
    gap = float((got - want).abs().to_numpy().max())
    assert gap < TOLERANCE, f"2-process loss curve off by {gap:.3g}\n{got}\n{want}"
    # the test can fail: the loss moves far more than the tolerance from step to step
    assert float(want["loss"].diff().abs().max()) > 100 * TOLERANCE
    for key, value in _weights(one).items():
        torch.testing.assert_close(_weights(two)[key], value, rtol=1e-3, atol=1e-4)


def test_two_process_run_killed_after_a_checkpoint_resumes_bit_identically(
        tasks_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    _run(_torchrun(_args(reference, tasks_dir, grad_accum=1)))

    out = tmp_path / "killed"
    proc = subprocess.Popen(_torchrun(_args(out, tasks_dir, grad_accum=1)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 240
    try:
        while not (out / "checkpoints" / "step-0000002").exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.time() < deadline, "the run wrote no checkpoint in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks, no cleanup at all
        proc.wait()
    assert not (out / "model").exists(), "the run finished before it could be killed"
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    _run(_torchrun([*_args(out, tasks_dir, grad_accum=1), "--resume"]))
    got, want = _weights(out), _weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    columns = ["step", "loss", "answer", "calibration"]
    pd.testing.assert_frame_equal(_log(out)[columns], _log(reference)[columns])
