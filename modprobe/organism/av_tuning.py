"""Tune the shortcut AV organism toward the named modality and compare it on held-out clips.

``modprobe organism tune-av --out DIR`` (docs/mma.md, "Tuning the shortcut organism"):

1. **held-out clips** (``DIR/heldout``): ``generate_clips(pairing="partner")`` with the
   study's data seed, so every aligned clip is a shape with its partner sound and the
   ``misaligned`` condition (another clip's soundtrack) is a conflict;
2. **tuning** (``DIR/tune-<variant>``): :func:`modprobe.finetune.clips.train_clips` on
   :func:`modprobe.organism.av.tuning_items` (partner pairs and conflicts from a clip
   seed neither training, the probes nor the held-out clips use; the label is the class
   of the modality the question names), LoRA on ``q_proj`` and ``v_proj``; the variants
   differ only in their loss: ``answer`` (the answer loss alone) and ``calibration``
   (plus the attention-calibration loss toward the named modality's span);
3. **MMA runs** (``DIR/mma-<model>``): ``aligned`` and ``misaligned`` (several draws) on
   the held-out clips for the base organism and each variant (``modprobe mma``'s runner);
4. **comparison**: ``DIR/accuracy_paired.csv`` (each variant minus the base, paired per
   item, per condition and prompt type: :func:`modprobe.analysis.mma.compare.compare_mma`),
   ``DIR/contrast_change.csv`` (Cohen's d per layer and span before and after, with a
   paired interval on the change) and ``DIR/d_before_after.png``.

Every phase skips what a previous call finished (an interrupted MMA run is resumed), so
the command can be rerun after a kill.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from modprobe.study.runfolder import is_complete

#: The models compared: the base organism, then the tuned variants.
BASE = "shortcut"
#: Loss weights of each tuned variant (``modprobe.finetune.LossConfig`` fields).
VARIANTS: dict[str, dict[str, float]] = {"answer": {"answer": 1.0},
                                         "calibration": {"answer": 1.0, "calibration": 1.0}}
#: The MMA conditions of the comparison.
CONDITIONS: tuple[str, ...] = ("aligned", "misaligned")


@dataclass(frozen=True)
class TuningPlan:
    """The experiment's settings.

    Attributes:
        tune_clips: Tuning clips (two questions each; half are conflicts).
        steps, batch_size, learning_rate, rank: The LoRA run (alpha = 2 * rank).
        heldout_clips: Held-out clips of the MMA runs.
        draws: Draws of the ``misaligned`` condition.
        seed: Seeds the tuning batches, the LoRA initialisation and the bootstrap.
        threads: torch CPU threads.
        variants: Which of :data:`VARIANTS` to tune.
    """

    tune_clips: int = 200
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 3e-3
    rank: int = 8
    heldout_clips: int = 100
    draws: int = 4
    seed: int = 0
    threads: int = 1
    variants: tuple[str, ...] = field(default_factory=lambda: tuple(VARIANTS))


def tune_variant(out: Path, variant: str, plan: TuningPlan) -> Path:
    """Tune the shortcut organism with one variant's loss into ``out`` (skip if done).

    Args:
        out: The tuning run's folder; a complete run there (``manifest.json`` with
            status ``complete``) is kept and not retrained.
        variant: A key of :data:`VARIANTS` (the loss weights).
        plan: The settings (tuning clips, LoRA rank and recipe, seed, threads).

    Returns:
        ``out``, holding the tuned adapter.
    """
    from modprobe.finetune import LoraSettings, LossConfig, TrainConfig
    from modprobe.finetune.clips import train_clips
    from modprobe.loading import load
    from modprobe.organism import AV_SHORTCUT_DIR
    from modprobe.organism.av import SHORTCUT_RECIPE, AVOrganismConfig, tuning_items

    if is_complete(out):
        return out
    if out.exists():
        # A tuning killed outright (no chance to clean up) left its folder inside this
        # experiment's own folder; clip runs do not resume, so it is retrained.
        shutil.rmtree(out)
    items = tuning_items(plan.tune_clips, AVOrganismConfig(**SHORTCUT_RECIPE))
    config = TrainConfig(out=str(out), steps=plan.steps, batch_size=plan.batch_size,
                         learning_rate=plan.learning_rate, seed=plan.seed,
                         threads=plan.threads, loss=LossConfig(**VARIANTS[variant]),
                         lora=LoraSettings(rank=plan.rank, alpha=2.0 * plan.rank))
    train_clips(load(str(AV_SHORTCUT_DIR), device="cpu", dtype="float32"), items, config)
    return out


def mma_run(out: Path, model: str, data: Path, plan: TuningPlan, progress: bool) -> Path:
    """``aligned`` and ``misaligned`` on the held-out clips (resumed, or skipped if done).

    Args:
        out: The MMA run folder; a complete run is kept, a partial one resumed.
        model: Alias or folder of the model (the base organism or a tuned run).
        data: Folder of the held-out clips (``clips.jsonl``).
        plan: The settings (draws of ``misaligned``, seed).
        progress: Show the run's progress bar.

    Returns:
        ``out``.
    """
    from modprobe.study.mma import MmaConfig, run_mma

    if not is_complete(out):
        run_mma(MmaConfig(model=model, data=str(data), out=str(out), conditions=list(CONDITIONS),
                          draws=plan.draws, visual="image", device="cpu", dtype="float32",
                          seed=plan.seed, figures=False, resume=out.exists()),
                progress=progress)
    return out


def compare(out: Path, runs: dict[str, Path], seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired accuracy and the change in d, every tuned model against the base.

    Args:
        out: The experiment folder the tables and the figure are written to.
        runs: Model name -> its MMA run folder, :data:`BASE` first (the others are
            compared with it, on the same held-out items).
        seed: Seed of the bootstrap intervals.

    Returns:
        ``(accuracy, contrast)``, also written to ``out/accuracy_paired.csv`` and
        ``out/contrast_change.csv``, with ``out/d_before_after.png``.
    """
    from modprobe.analysis.mma.compare import compare_mma, plot_contrast_change
    from modprobe.analysis.mma.measures import contrast_change
    from modprobe.io import write_csv
    from modprobe.study.runfolder import read_table

    tables = {name: {t: read_table(run / f"{t}.parquet") for t in ("items", "attention")}
              for name, run in runs.items()}
    accuracy, contrast = [], []
    for name in list(runs)[1:]:
        paired = compare_mma(tables[BASE]["items"], tables[name]["items"], (BASE, name),
                             seed=seed)
        accuracy.append(paired.assign(model=name))
        change = contrast_change(tables[BASE]["attention"], tables[name]["attention"],
                                 seed=seed)
        contrast.append(change.assign(model=name))
    accuracy_table = pd.concat(accuracy, ignore_index=True)
    contrast_table = pd.concat(contrast, ignore_index=True)
    write_csv(out / "accuracy_paired.csv", accuracy_table)
    write_csv(out / "contrast_change.csv", contrast_table)
    labels = {name: f"tuned, {name} loss" for name in list(runs)[1:]}
    plot_contrast_change(contrast_table.assign(model=contrast_table["model"].map(labels)),
                         before="base (shortcut)",
                         title="Shortcut AV organism before and after LoRA tuning: Cohen's d "
                               "per layer, held-out clips",
                         path=out / "d_before_after.png")
    return accuracy_table, contrast_table


def _check_plan(out: Path, plan: TuningPlan) -> None:
    """Record the settings; refuse a rerun whose settings differ (its phases would mix)."""
    from dataclasses import asdict

    from modprobe.errors import ModprobeError
    from modprobe.io import write_json

    wanted = {k: v for k, v in asdict(plan).items() if k != "variants"}
    recorded = out / "plan.json"
    if recorded.is_file():
        before = json.loads(recorded.read_text(encoding="utf-8"))
        differ = sorted(k for k in wanted if before.get(k) != wanted[k])
        if differ:
            raise ModprobeError(
                f"{out} holds an experiment with other settings ({', '.join(differ)}: "
                f"{', '.join(str(before.get(k)) for k in differ)}); rerun with those, or "
                "choose a new --out")
        return
    if out.exists() and not out.is_dir():
        raise ModprobeError(f"--out {out} is a file; choose a folder")
    if out.exists() and any(out.iterdir()):
        raise ModprobeError(f"--out {out} is not empty and holds no tuning experiment; "
                            "choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(recorded, wanted)


def run_tuning(out: str | Path, plan: TuningPlan | None = None, *, progress: bool = True,
               say: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or finish) the whole experiment into ``out``; see the module docstring.

    Args:
        out: The experiment folder (created; finished phases are kept and skipped).
        plan: The settings (default :class:`TuningPlan`); a rerun into the same ``out``
            must use the same ones (``out/plan.json``), except ``variants``.
        progress: Show the MMA runs' progress bars.
        say: Called with one line per phase.

    Returns:
        The paired accuracy and contrast-change tables.
    """
    from modprobe.data.clips import generate_clips
    from modprobe.errors import ModprobeError
    from modprobe.organism import AV_SHORTCUT_DIR

    plan = plan or TuningPlan()
    unknown = sorted(set(plan.variants) - set(VARIANTS))
    if unknown or not plan.variants:
        raise ModprobeError(f"--variants: unknown {', '.join(unknown) or '(none)'}; "
                            f"choose from {', '.join(VARIANTS)}")
    out = Path(out)
    _check_plan(out, plan)
    heldout = out / "heldout"
    if not (heldout / "clips.jsonl").is_file():
        generate_clips(heldout, n=plan.heldout_clips, seed=0, pairing="partner")
    runs = {BASE: mma_run(out / f"mma-{BASE}", str(AV_SHORTCUT_DIR), heldout, plan, progress)}
    say(f"base organism evaluated: {runs[BASE]}")
    for variant in plan.variants:
        tuned = tune_variant(out / f"tune-{variant}", variant, plan)
        say(f"tuned ({variant} loss): {tuned}")
        runs[variant] = mma_run(out / f"mma-{variant}", str(tuned), heldout, plan, progress)
        say(f"evaluated: {runs[variant]}")
    return compare(out, runs, seed=plan.seed)


__all__ = ["BASE", "CONDITIONS", "VARIANTS", "TuningPlan", "compare", "mma_run", "run_tuning",
           "tune_variant"]
