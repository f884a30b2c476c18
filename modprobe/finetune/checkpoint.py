"""Atomic training checkpoints without pickle: safetensors for tensors, JSON for the rest.

A checkpoint is a folder ``RUN/checkpoints/step-NNNNNNN/`` holding

* ``weights.safetensors``: every trainable parameter, by module name;
* ``optimizer.safetensors``: the optimizer's per-parameter state (AdamW's ``step``,
  ``exp_avg``, ``exp_avg_sq``) keyed ``<parameter name>/<field>``, and the random number
  generator states (``rng/torch``, ``rng/cuda/<i>``) as uint8 tensors;
* ``state.json``: the step, the optimizer's hyper-parameter groups and the log rows so far.

It is written into a temporary folder beside its final place and renamed into place
(``os.replace`` of a folder is atomic on POSIX), so a kill at any moment leaves either the
whole checkpoint or none. Restoring one gives back the exact parameters, optimizer state
and random state, so a resumed run continues the same trajectory bit for bit (on the same
hardware and thread count).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from modprobe.errors import ModprobeError

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^step-(\d{7})$")


@dataclass
class TrainingState:
    """What a checkpoint restores.

    Attributes:
        step: Optimizer steps done.
        log: The log rows up to ``step``.
    """

    step: int
    log: list[dict[str, Any]]


def checkpoint_dir(run: Path, step: int) -> Path:
    """The folder of the checkpoint after ``step`` optimizer steps.

    Args:
        run: The run folder.
        step: Optimizer steps done.

    Returns:
        ``RUN/checkpoints/step-NNNNNNN`` (zero-padded, so names sort by step).
    """
    return Path(run) / CHECKPOINTS / f"step-{step:07d}"


def latest_checkpoint(run: Path) -> Path | None:
    """The complete checkpoint with the highest step (temporary folders are ignored)."""
    folder = Path(run) / CHECKPOINTS
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return max(steps)[1] if steps else None


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    return tensors


def save_checkpoint(run: Path, step: int, parameters: dict[str, torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer, log: list[dict[str, Any]],
                    keep: int = 2) -> Path:
    """Write the checkpoint of ``step`` atomically and keep only the last ``keep``.

    Args:
        run: The run folder.
        step: Optimizer steps done.
        parameters: The trainable parameters by name, in the optimizer's order.
        optimizer: The optimizer (its state is saved by parameter name, not index).
        log: The log rows so far.
        keep: How many checkpoints to keep (older ones are deleted after the new one is in
            place).
    """
    final = checkpoint_dir(run, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        weights = {name: p.detach().cpu().contiguous() for name, p in parameters.items()}
        save_file(weights, str(tmp / "weights.safetensors"))
        state = optimizer.state_dict()
        names = list(parameters)
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for index, fields in state["state"].items():
            for key, value in fields.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{names[index]}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(names[index], {})[key] = value
        tensors.update(_rng_tensors())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
                  for g in state["param_groups"]]
        meta = {"step": step, "param_names": names, "param_groups": groups,
                "optimizer_scalars": scalars, "log": log}
        (tmp / "state.json").write_text(json.dumps(meta, indent=1, default=float) + "\n")
        for file in tmp.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():  # a damaged checkpoint of this step, skipped on resume
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in sorted(p for p in final.parent.iterdir() if _NAME.match(p.name))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


class CheckpointError(ModprobeError, ValueError):
    """No intact checkpoint to resume from, or one of another run's parameters."""


def _read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                            dict[str, torch.Tensor]]:
    """Read ``state.json``, the weights and the optimizer tensors of a checkpoint, whole.

    A truncated or missing file is found here, before anything is restored.

    Raises:
        CheckpointError: a file is missing, truncated or not what it should be.
    """
    try:
        meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        weights = load_file(str(folder / "weights.safetensors"))
        tensors = load_file(str(folder / "optimizer.safetensors"))
        if not isinstance(meta, dict) or not {"step", "param_names", "param_groups",
                                               "optimizer_scalars", "log"} <= set(meta):
            raise ValueError("state.json lacks the step, parameters or log")
        if "rng/torch" not in tensors or set(meta["param_names"]) - set(weights):
            raise ValueError("a tensor is missing")
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"checkpoint {folder} is damaged "
                              f"({type(err).__name__}: {str(err).strip()[:160]})") from None
    return meta, weights, tensors


def _older_checkpoints(folder: Path) -> list[Path]:
    """The other checkpoints of ``folder``'s run with a lower step, newest first."""
    match = _NAME.match(folder.name)
    if match is None or not folder.parent.is_dir():
        return []
    step = int(match.group(1))
    steps = [(int(m.group(1)), p) for p in folder.parent.iterdir()
             if (m := _NAME.match(p.name)) and int(m.group(1)) < step]
    return [p for _, p in sorted(steps, reverse=True)]


def load_checkpoint(folder: Path, parameters: dict[str, torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer) -> TrainingState:
    """Restore parameters, optimizer state and random state from a checkpoint folder.

    A damaged checkpoint (a file truncated or missing, e.g. by a full disk or a copy cut
    short) is skipped with a warning naming it, and the newest intact older checkpoint of
    the run is restored instead: training repeats the steps in between.

    Args:
        folder: The checkpoint folder (``RUN/checkpoints/step-NNNNNNN``).
        parameters: The trained parameters by name; their values are replaced in place.
        optimizer: The optimizer over ``parameters``; its state is replaced.

    Returns:
        The step and log rows of the checkpoint actually restored.

    Raises:
        CheckpointError: no intact checkpoint is left (the message names the damage and
            says to start a new ``--out``), or the checkpoint holds other parameters than
            the model being trained (different LoRA targets or training mode).
    """
    folder = Path(folder)
    damaged: list[str] = []
    for candidate in [folder, *_older_checkpoints(folder)]:
        try:
            meta, weights, tensors = _read_checkpoint(candidate)
        except CheckpointError as err:
            damaged.append(str(err))
            continue
        if damaged:
            warnings.warn(f"{'; '.join(damaged)}: resuming from the intact checkpoint "
                          f"{candidate} (step {meta['step']}) instead", stacklevel=2)
        break
    else:
        raise CheckpointError(f"{'; '.join(damaged)}, and no intact older checkpoint is "
                              "left to resume from; start a new --out")
    folder = candidate
    names = list(parameters)
    if meta["param_names"] != names:
        raise CheckpointError(
            f"checkpoint {folder} trains other parameters than this run "
            f"({len(meta['param_names'])} saved, {len(names)} now); resume with the "
            "original options")
    with torch.no_grad():
        for name, p in parameters.items():
            p.copy_(weights[name].to(p.device, p.dtype))
    per_param: dict[int, dict[str, Any]] = {}
    for index, name in enumerate(names):
        fields = {key.split("/", 1)[1]: value for key, value in tensors.items()
                  if key.split("/", 1)[0] == name and not key.startswith("rng/")}
        fields.update(meta["optimizer_scalars"].get(name, {}))
        if fields:
            per_param[index] = fields
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[f"rng/cuda/{i}"] for i in range(torch.cuda.device_count())
            if f"rng/cuda/{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    return TrainingState(step=int(meta["step"]), log=list(meta["log"]))
