"""Held-out evaluation by construction: a group split of the training data, recorded.

A fine-tuning run holds out whole clusters (generator groups: items made together share
a cluster, see :class:`modprobe.data.tasks.TaskItem`) for evaluation, chosen with the
run's seed, and drops from the held-out side every item whose *content* (question,
description, answer, image pixels) equals a training item's: in small worlds two groups
can draw the same text-heavy item, and an evaluation must not contain what the model
was trained on. The run folder records the split::

    RUN/split.json   content keys of the training and held-out items, counts, seed
    RUN/eval/        the held-out items as a task folder (items.jsonl + images)

and ``modprobe interference --model RUN`` evaluates on ``RUN/eval`` by default,
refusing (or, when forced, flagging) an evaluation set that shares content with training.

```python
from modprobe.data.split import content_key, split_items
split = split_items(items, fraction=0.25, seed=0)
split.train, split.eval, split.dropped        # items, items, held-out items dropped as duplicates
```
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modprobe.errors import ModprobeError

SPLIT_FILE = "split.json"
EVAL_DIR = "eval"


class HeldOutError(ModprobeError, ValueError):
    """An evaluation would share items with a fine-tuning run's training data."""


def content_key(item: Any) -> str:
    """Hash what a model is asked and shown.

    The question, description, options, answer, relevant modality and the image's pixels
    count; ids, clusters and file names do not.

    Args:
        item: A task item (its image opened, if it has one).

    Returns:
        A SHA-256 hex digest.
    """
    digest = hashlib.sha256()
    for text in (item.question, item.context or "", item.answer, item.relevant,
                 "\x1f".join(item.options or [])):
        digest.update(str(text).encode("utf-8") + b"\x00")
    image = item.image
    if image is not None:
        digest.update(f"{image.mode}{image.size}".encode() + image.tobytes())
    elif item.image_file:
        digest.update(b"<unopened image>" + item.image_file.encode())
    return digest.hexdigest()[:20]


def _cluster(item: Any) -> str:
    return str(item.cluster if item.cluster is not None else item.id)


@dataclass
class Split:
    """A train / held-out split.

    Attributes:
        train: Training items.
        eval: Held-out items (none shares content with a training item).
        dropped: Items of held-out clusters dropped because a training item has their content.
        fraction: Share of clusters held out.
        seed: Seed of the cluster draw.
    """

    train: list[Any]
    eval: list[Any]
    dropped: list[Any]
    fraction: float
    seed: int

    def record(self) -> dict[str, Any]:
        """The JSON record (``RUN/split.json``): counts, clusters and content keys."""
        def side(items: Sequence[Any]) -> dict[str, Any]:
            keys = sorted({content_key(it) for it in items})
            return {"items": len(items), "clusters": sorted({_cluster(it) for it in items}),
                    "fingerprint": hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20],
                    "content_keys": keys}

        return {"by": "cluster", "fraction": self.fraction, "seed": self.seed,
                "dropped_as_duplicates": [it.id for it in self.dropped],
                "train": side(self.train), "eval": side(self.eval)}

    def summary(self) -> dict[str, Any]:
        """The record without the content keys (for the manifest)."""
        record = self.record()
        for side in ("train", "eval"):
            record[side] = {k: v for k, v in record[side].items() if k != "content_keys"}
        return record


def split_items(items: Sequence[Any], fraction: float, seed: int) -> Split:
    """Hold out ``fraction`` of the clusters (at least one), drawn with ``seed``.

    Args:
        items: The items (their images opened, for the content keys).
        fraction: Share of the clusters held out.
        seed: Seed of the draw.

    Returns:
        The split: training items, held-out items and the duplicates dropped.

    Raises:
        HeldOutError: fewer than two clusters.
    """
    clusters = sorted({_cluster(it) for it in items})
    if len(clusters) < 2:
        raise HeldOutError(
            f"cannot hold out a group: the data has {len(clusters)} cluster; give more groups, "
            "an evaluation set (eval_data=), or holdout=0 (--holdout 0) to train on everything")
    count = min(len(clusters) - 1, max(1, round(fraction * len(clusters))))
    order = np.random.default_rng(np.random.SeedSequence([seed, 20_261_207])).permutation(clusters)
    held = set(order[:count].tolist())
    train = [it for it in items if _cluster(it) not in held]
    seen = {content_key(it) for it in train}
    eval_items = [it for it in items if _cluster(it) in held and content_key(it) not in seen]
    dropped = [it for it in items if _cluster(it) in held and content_key(it) in seen]
    return Split(train=train, eval=eval_items, dropped=dropped, fraction=fraction, seed=seed)


def given_split(train: Sequence[Any], eval_items: Sequence[Any]) -> Split:
    """A split from a separate evaluation set, refused when it shares content with training.

    Args:
        train: The training items.
        eval_items: The evaluation items.

    Returns:
        The split (nothing dropped).

    Raises:
        HeldOutError: an evaluation item has a training item's content.
    """
    seen = {content_key(it): it for it in train}
    shared = [it for it in eval_items if content_key(it) in seen]
    if shared:
        first = shared[0]
        raise HeldOutError(
            f"{len(shared)} of {len(eval_items)} evaluation items share their content with "
            f"training items (e.g. {first.id} = training item {seen[content_key(first)].id}); "
            "give an evaluation set without them")
    return Split(train=list(train), eval=list(eval_items), dropped=[], fraction=0.0, seed=0)


def write_split(out: Path, split: Split, info: dict[str, Any]) -> None:
    """Write ``RUN/split.json`` and the held-out items as the task folder ``RUN/eval``.

    Args:
        out: The run folder.
        split: The split.
        info: The ``dataset.json`` of ``RUN/eval``.
    """
    from modprobe.data.tasks import write_tasks
    from modprobe.io import write_bytes, write_json

    write_json(out / SPLIT_FILE, split.record())
    folder = out / EVAL_DIR
    items = []
    for item in split.eval:
        if item.image is not None:
            name = f"images/{item.id}.png"
            import io

            buffer = io.BytesIO()
            item.image.save(buffer, format="PNG")
            write_bytes(folder / name, buffer.getvalue())
            item = item.replaced(image_file=name)
        items.append(item)
    write_tasks(folder, items, {**info, "heldout_of": str(out)})


def read_split(run: str | Path) -> dict[str, Any] | None:
    """A fine-tuning run's split record, or None when it has none."""
    path = Path(run) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HeldOutError(f"{path}: unreadable split record ({err}); the run's held-out "
                           "items cannot be checked") from None
    return record if isinstance(record, dict) else None


def heldout_note(run: str | Path, items: Sequence[Any], allow_overlap: bool) -> str:
    """Check an evaluation of fine-tuning run ``run`` on ``items`` (images opened).

    Args:
        run: The fine-tuning run folder (its ``split.json``).
        items: The evaluation items.
        allow_overlap: Warn instead of refusing items that share training content.

    Returns:
        A line saying what was checked (and, with ``allow_overlap``, a loud warning).

    Raises:
        HeldOutError: items share content with the run's training items (without
            ``allow_overlap``), or the run has no split record.
    """
    record = read_split(run)
    if record is None:
        if allow_overlap:
            return (f"WARNING: {run} records no training split; whether these items were "
                    "trained on is unknown (--allow-train-overlap)")
        raise HeldOutError(
            f"{run} records no training split (split.json), so held-out items cannot be "
            "checked; retrain with a hold-out (--holdout 0.25) or pass --allow-train-overlap")
    trained = set(record.get("train", {}).get("content_keys", []))
    shared = [it for it in items if content_key(it) in trained]
    n_train = record.get("train", {}).get("items", len(trained))
    if shared and not allow_overlap:
        raise HeldOutError(
            f"{len(shared)} of {len(items)} evaluation items share their content with the "
            f"{n_train} training items of {run} (e.g. {shared[0].id}); evaluate on its "
            f"held-out items (the default, {Path(run) / EVAL_DIR}) or pass "
            "--allow-train-overlap to evaluate anyway (flagged in the manifest)")
    if shared:
        return (f"WARNING: {len(shared)} of {len(items)} evaluation items were trained on "
                f"by {run} (--allow-train-overlap): these numbers are not held-out")
    return (f"held-out: none of the {len(items)} evaluation items shares content with the "
            f"{n_train} training items of {run}")


def finetune_run(model: str | Path) -> Path | None:
    """The folder of ``model`` when it is a fine-tuning run (its manifest says so), else None."""
    path = Path(model)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return path if isinstance(manifest, dict) and manifest.get("kind") == "finetune" else None


def base_model(model: str | Path) -> str:
    """The base model of a fine-tuning run (what it was trained from), else ``model``."""
    run = finetune_run(model)
    if run is None:
        return str(model)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return str(manifest.get("options", {}).get("base", model))


def default_eval_data(model: str | Path) -> str | None:
    """``RUN/eval`` of a fine-tuning run that held items out, else None."""
    run = finetune_run(model)
    if run is None or not (run / EVAL_DIR / "items.jsonl").is_file():
        return None
    return str(run / EVAL_DIR)
