"""``modprobe organism train --out DIR``: train the bundled organism.

``modprobe organism train-av --out DIR`` trains the audio-visual one, ``modprobe organism
tune-av --out DIR`` tunes the shortcut one and compares it on held-out clips (docs/mma.md).
See :mod:`modprobe.organism` and docs/organism.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from modprobe import cli
from modprobe.commands import options

#: ``modprobe.organism.config.OrganismConfig``'s defaults (a test checks they agree; the
#: organism package imports torch).
DEFAULTS = {"seed": 0, "steps": 1500, "batch_size": 48, "learning_rate": 3e-3, "threads": 1,
            "eval_every": 100, "probe_items": 64}
#: ``modprobe.organism.av.AVOrganismConfig``'s defaults (checked the same way).
AV_DEFAULTS = {"seed": 0, "steps": 250, "batch_size": 16, "learning_rate": 3e-3, "threads": 1,
               "eval_every": 50, "probe_clips": 32, "partner_share": 0.0}
#: ``modprobe.organism.av_tuning.TuningPlan``'s defaults (checked the same way).
TUNE_DEFAULTS = {"steps": 300, "tune_clips": 200, "heldout_clips": 100, "draws": 4,
                 "learning_rate": 3e-3, "rank": 8, "variants": ("answer", "calibration")}


def build_parser(prog: str = "modprobe organism") -> argparse.ArgumentParser:
    """The parser of ``modprobe organism``."""
    parser = options.new_parser(
        prog, "Train the bundled model organisms (a tiny LLaVA on the lowres color task; "
        "train-av: a tiny Qwen2.5-Omni thinker on the synthetic clips).")
    sub = options.add_subparsers(parser)
    train = sub.add_parser("train", help="train from scratch and save_pretrained to --out")
    options.add_out(train, "folder to write (model, processor, log); must be empty",
                    required=True,
                    overwrite="write into a non-empty --out, replacing the checkpoint there")
    options.add_seed(train, default=DEFAULTS["seed"])
    options.add_training(train, DEFAULTS, batch="items per step")
    train.add_argument("--eval-every", type=cli.positive_int, default=DEFAULTS["eval_every"],
                       help="steps between held-out evaluations")
    train.add_argument("--probe-items", type=cli.positive_int, default=DEFAULTS["probe_items"],
                       help="items per held-out probe set")
    train.add_argument("--quiet", action="store_true", help="do not print the log rows")
    _add_train_av(sub)
    _add_tune_av(sub)
    return parser


def _add_train_av(sub: argparse._SubParsersAction) -> None:
    train_av = sub.add_parser(
        "train-av", help="train the audio-visual organism (a tiny Qwen2.5-Omni thinker on the "
                         "synthetic clips; docs/mma.md)")
    options.add_out(train_av, "folder to write (model, processor, log); must be empty",
                    required=True,
                    overwrite="write into a non-empty --out, replacing the checkpoint there")
    options.add_seed(train_av, default=AV_DEFAULTS["seed"])
    options.add_training(train_av, AV_DEFAULTS, batch="clip questions per step")
    train_av.add_argument("--eval-every", type=cli.positive_int,
                          default=AV_DEFAULTS["eval_every"],
                          help="steps between held-out evaluations")
    train_av.add_argument("--probe-clips", type=cli.positive_int,
                          default=AV_DEFAULTS["probe_clips"], help="held-out clips per probe set")
    train_av.add_argument("--partner-share", type=cli.share, default=AV_DEFAULTS["partner_share"],
                          help="share of training clips that show a shape with its partner "
                               "sound (0: classes drawn independently)")
    train_av.add_argument("--aligned-only", action="store_true",
                          help="train on aligned clips only, no unimodal ones (with "
                               "--partner-share 1: the av-organism-shortcut recipe)")
    train_av.add_argument("--quiet", action="store_true", help="do not print the log rows")


def _add_tune_av(sub: argparse._SubParsersAction) -> None:
    tune = sub.add_parser(
        "tune-av", help="tune av-organism-shortcut toward the named modality (LoRA on q, v; "
                        "answer loss, and answer + attention calibration) and compare it "
                        "with the base on held-out clips (docs/mma.md)")
    options.add_out(tune, "experiment folder (created; finished phases are kept, so a rerun "
                          "continues)", required=True)
    options.add_training(tune, TUNE_DEFAULTS, steps="optimizer steps per tuned variant",
                         lr="LoRA learning rate", threads=None)
    tune.add_argument("--tune-clips", type=cli.positive_int,
                      default=TUNE_DEFAULTS["tune_clips"],
                      help="tuning clips (two questions each, half of them conflicts)")
    tune.add_argument("--heldout-clips", type=cli.positive_int,
                      default=TUNE_DEFAULTS["heldout_clips"], help="held-out clips evaluated")
    tune.add_argument("--draws", type=cli.positive_int, default=TUNE_DEFAULTS["draws"],
                      help="draws of the misaligned condition")
    tune.add_argument("--rank", type=cli.positive_int, default=TUNE_DEFAULTS["rank"],
                      help="LoRA rank (alpha is twice the rank)")
    tune.add_argument("--variants", default=",".join(TUNE_DEFAULTS["variants"]),
                      help="comma-separated losses to tune with: answer, calibration")
    options.add_run_flags(tune, resume=None, figures=False)


def _main_tune_av(args: argparse.Namespace) -> int:
    from modprobe.organism.av_tuning import TuningPlan, run_tuning

    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    out = Path(args.out)
    plan = TuningPlan(steps=args.steps, tune_clips=args.tune_clips,
                      heldout_clips=args.heldout_clips, draws=args.draws,
                      learning_rate=args.lr, rank=args.rank, variants=variants)
    accuracy, _ = run_tuning(out, plan, progress=not args.quiet)
    for row in accuracy[accuracy["measure"] == "accuracy"].itertuples(index=False):
        change = ("the same on every item" if row.method == "identical" else
                  f"diff={row.difference:+.3f} ci=[{row.low:+.3f}, {row.high:+.3f}] "
                  f"p={row.p:.2g}")
        print(f"{row.model} | {row.condition} | {row.ask} prompt: accuracy {row.a:.3f} -> "
              f"{row.b:.3f} {change} n={row.n}")
    print(f"tables and figure: {out}")
    return cli.EXIT_OK


def _show(row: dict[str, float]) -> None:
    print(" ".join(f"{k.split('/', 1)[-1]}={v:.3g}" for k, v in row.items()), flush=True)


def _main_train_av(args: argparse.Namespace, out: Path) -> int:
    from modprobe.organism.av import AVOrganismConfig, train_av

    config = dataclasses.replace(
        AVOrganismConfig(), seed=args.seed, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, threads=args.threads, eval_every=args.eval_every,
        probe_clips=args.probe_clips, partner_share=args.partner_share,
        unimodal=not args.aligned_only)
    train_av(config, out, progress=None if args.quiet else _show)
    print(f"trained the audio-visual organism {config.steps} steps; saved to {out}")
    return cli.EXIT_OK


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``modprobe organism``."""
    args = build_parser().parse_args(argv)
    # Before training: a wrong --out must not cost the whole training run.
    if args.command == "tune-av":
        return _main_tune_av(args)
    out = cli.check_out(args.out, overwrite=args.overwrite, what="model")
    if args.command == "train-av":
        return _main_train_av(args, out)
    from modprobe.organism.config import OrganismConfig
    from modprobe.organism.train import save, train

    config = dataclasses.replace(
        OrganismConfig(), seed=args.seed, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, threads=args.threads, eval_every=args.eval_every,
        probe_items=args.probe_items)

    def show(row: dict[str, float]) -> None:
        cells = " ".join(f"{k.split('/')[-1]}={v:.3g}" for k, v in row.items())
        print(cells, flush=True)

    run = train(config, progress=None if args.quiet else show)
    out = save(run, config, out)
    print(f"trained {config.steps} steps in {run.seconds:.0f} s wall, {run.cpu_seconds:.0f} s "
          f"CPU ({run.steps_per_second:.2f} steps/s, {config.threads} threads); saved to {out}")
    return cli.EXIT_OK
