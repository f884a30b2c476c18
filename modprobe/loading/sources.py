"""Where a model comes from: aliases, hub ids, local folders and fine-tuning runs."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from modprobe.loading.errors import ModelNotFoundError

#: Short names for the checkpoints the papers study (hub ids; need network or a cache).
ALIASES: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llava-next": "llava-hf/llava-v1.6-mistral-7b-hf",
    "qwen2-vl": "Qwen/Qwen2-VL-7B-Instruct",
    "qwen2.5-vl": "Qwen/Qwen2.5-VL-7B-Instruct",
    "instructblip": "Salesforce/instructblip-vicuna-7b",
}

#: Aliases that resolve to a folder shipped inside modprobe (filled in by modules that
#: ship one, e.g. the bundled model organism).
LOCAL_ALIASES: dict[str, Path] = {
    "organism": Path(__file__).resolve().parents[1] / "organism" / "checkpoint",
    "av-organism": Path(__file__).resolve().parents[1] / "organism" / "av_checkpoint",
    "av-organism-shortcut": Path(__file__).resolve().parents[1] / "organism" / "av_shortcut_checkpoint",
}


def resolve_source(name_or_path: str | os.PathLike[str]) -> str:
    """Turn an alias, hub id or folder into what ``from_pretrained`` takes.

    Raises:
        ModelNotFoundError: for a path-like name whose folder does not exist, or a bare
            name that is no known alias (the message lists the aliases).
    """
    name = os.fspath(name_or_path)
    if name in LOCAL_ALIASES:
        return str(LOCAL_ALIASES[name])
    if name in ALIASES:
        return ALIASES[name]
    path = Path(name).expanduser()
    if path.is_dir():
        tuned = finetuned_model_dir(path)
        if tuned is not None:
            return str(tuned)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{name!r} is a folder but holds no config.json; point to a folder written by "
                "save_pretrained (e.g. by `python -m modprobe.testing tiny llava --out DIR`)")
        return str(path)
    # A hub id is exactly "org/name"; anything else with a slash, or starting like a
    # path, is a folder the user expected to exist.
    looks_like_path = (name.startswith((".", "/", "~")) or name.count("/") > 1
                       or os.sep != "/" and os.sep in name)
    if looks_like_path or path.exists():
        raise ModelNotFoundError(
            f"local model folder {name!r} does not exist; check the path, or create a test "
            "model there with `python -m modprobe.testing tiny llava --out DIR`")
    if "/" not in name:
        known = sorted([*ALIASES, *LOCAL_ALIASES])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelNotFoundError(
            f"unknown model alias {name!r}.{hint} Known aliases: {', '.join(known)}. "
            "Or pass a hub id (org/name) or a local folder.")
    return name


def finetuned_model_dir(path: Path) -> Path | None:
    """The model folder of a fine-tuning run (``modprobe.finetune``), or None.

    ``path`` may be the run folder (``RUN/model`` is returned) or a folder holding a
    LoRA adapter (``adapter_config.json``), returned as is.

    Raises:
        ModelNotFoundError: ``path`` is a fine-tuning run that has not finished.
    """
    if (path / "adapter_config.json").is_file():
        return path
    manifest = path / "manifest.json"
    if (path / "config.json").is_file() or not manifest.is_file():
        return None
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("kind") != "finetune":
        return None
    model = path / "model"
    if info.get("status") == "complete" and not model.is_dir():
        raise ModelNotFoundError(
            f"fine-tuning run {str(path)!r} finished, but its model folder {str(model)!r} is "
            "gone (deleted or moved); put the folder back, or train again into a new --out")
    if info.get("status") != "complete" or not model.is_dir():
        raise ModelNotFoundError(
            f"fine-tuning run {str(path)!r} has not finished (status {info.get('status')!r}); "
            "resume it with `python -m modprobe.finetune ... --out "
            f"{path} --resume`, or load its base model")
    return model

