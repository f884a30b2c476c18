"""The fine-tuning run folder: its manifest, per-step log and trained model.

The folder follows the rule every runner follows (:mod:`modprobe.study.runfolder`:
refused if it exists without ``resume``, or if its options or fingerprints changed)::

    RUN/manifest.json              options, versions, base model, status
    RUN/log.csv                    one row per optimizer step: every loss term, lr, time
    RUN/checkpoints/step-NNNNNNN/  the last checkpoints (safetensors + JSON, see checkpoint.py)
    RUN/model/                     save_pretrained: the LoRA adapter or the full model,
                                   + processor
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from modprobe.finetune.config import TrainConfig

#: Kind of run recorded in the manifest; ``modprobe.load`` recognises it.
RUN_KIND = "finetune"
#: Subfolder of the run folder that holds the trained model.
MODEL_DIR = "model"
#: The per-step log of the run folder.
LOG_FILE = "log.csv"
#: Options that change the trajectory: a resumed run must use the same values.
_RESUME_KEYS = ("base", "data", "holdout", "batch_size", "grad_accum", "learning_rate", "warmup_steps",
                "weight_decay", "grad_clip", "mode", "lora", "loss", "perturbations", "seed",
                "precision", "threads")


def base_name(loaded: Any) -> str:
    """What ``modprobe.load`` takes to rebuild the base model.

    Args:
        loaded: The :class:`modprobe.LoadedModel` being trained.

    Returns:
        The model's alias, or the absolute path of the folder it was loaded from (the
        source as given when it is not a folder).
    """
    from modprobe.loading import ALIASES, LOCAL_ALIASES

    if loaded.name in ALIASES or loaded.name in LOCAL_ALIASES:
        return str(loaded.name)
    source = Path(loaded.source)
    return str(source.resolve()) if source.is_dir() else str(loaded.source)


def data_name(data: Any) -> str | None:
    """The absolute path of the task folder trained on (None for items built in memory).

    Args:
        data: What :func:`modprobe.finetune.train` was given as ``data``.

    Returns:
        The resolved folder, or None when ``data`` has no folder.
    """
    if isinstance(data, (str, os.PathLike)):
        return str(Path(data).resolve())
    root = getattr(data, "root", None)
    return str(Path(root).resolve()) if root is not None else None


def data_fingerprint(data: Any, items: Sequence[Any]) -> dict[str, str] | None:
    """Hashes of the task folder trained on.

    Args:
        data: What :func:`modprobe.finetune.train` was given as ``data``.
        items: Every item of the data (held-out ones too), for their image files.

    Returns:
        The folder's fingerprint (:func:`modprobe.study.runfolder.data_fingerprint`), or
        None for items built in memory or generated (the generated ones are a function of
        the seed, a resume key).
    """
    from modprobe.study.runfolder import data_fingerprint as folder_fingerprint

    if isinstance(data, (str, os.PathLike)):
        root: Any = data
    else:
        root = getattr(data, "root", None)
    if root is None:
        return None
    return folder_fingerprint(root, [it.image_file for it in items if it.image_file])


def prepare_folder(loaded: Any, data: Any, config: TrainConfig, options: dict[str, Any],
                   split: Any, everything: list[Any]) -> dict[str, Any]:
    """Create (or reopen, with ``resume``) the run folder and return its manifest.

    Args:
        loaded: The :class:`modprobe.LoadedModel` to train (fingerprinted).
        data: What :func:`modprobe.finetune.train` was given as ``data``; None writes the
            generated color-world items to ``RUN/data`` for the record.
        config: The run's options (``out``, ``resume``, ``seed``).
        options: The options recorded in the manifest (base and data names included).
        split: The train / held-out split to write beside the run, or None.
        everything: Every item of the data, for its fingerprint.

    Returns:
        The manifest as written by :func:`modprobe.study.runfolder.prepare_run_folder`,
        with the split's summary added.
    """
    from modprobe.finetune.world import write_world_data
    from modprobe.study.runfolder import model_fingerprint, prepare_run_folder

    out = Path(config.out)
    fingerprints = {"model": model_fingerprint(loaded.module)}
    data_print = data_fingerprint(data, everything)
    if data_print is not None:
        fingerprints["data"] = data_print
    manifest = prepare_run_folder(out, options, resume=config.resume, resume_keys=_RESUME_KEYS,
                                  kind=RUN_KIND, fingerprints=fingerprints)
    if data is None:  # the generated items, on disk for the record (kept on resume)
        write_world_data(out / "data", loaded, seed=config.seed)
    if split is not None:
        from modprobe.data.split import write_split

        write_split(out, split, {"task": "held-out items of a fine-tuning run"})
        manifest["split"] = split.summary()
    return manifest


def save_model(loaded: Any, peft_model: Any, folder: Path) -> None:
    """``save_pretrained`` of the adapter (LoRA) or the whole model (full), plus the processor.

    Written into a temporary folder renamed into place, so ``RUN/model`` is whole or absent.

    Args:
        loaded: The trained :class:`modprobe.LoadedModel`.
        peft_model: The peft wrapper of a LoRA run, or None for a full fine-tune.
        folder: Where the model goes (replaced if it exists).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        if peft_model is not None:
            # save_embedding_layers=False: LoRA never touches the embeddings, and "auto"
            # would look the base model up on the hub.
            peft_model.save_pretrained(str(tmp), save_embedding_layers=False)
        else:
            loaded.module.save_pretrained(str(tmp))
        loaded.processor.save_pretrained(str(tmp))
        if folder.exists():  # a resumed run that had already finished once
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_log(run: str | os.PathLike[str]) -> pd.DataFrame:
    """The per-step log of a run folder.

    Args:
        run: The run folder.

    Returns:
        One row per optimizer step: the step, every loss term, the learning rate, seconds.
    """
    return pd.read_csv(Path(run) / LOG_FILE)


def read_manifest(run: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a run folder.

    Args:
        run: The run folder.

    Returns:
        The parsed ``manifest.json``.
    """
    return json.loads((Path(run) / "manifest.json").read_text(encoding="utf-8"))
