"""``modprobe finetune-demo``: the organism demonstration of ``docs/finetune.md``.

Trains each variant of the ablation from the shipped organism, evaluates it and the base
on held-out items and prints the summary table (see :mod:`modprobe.finetune.demo`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options

#: ``modprobe.finetune.demo.VARIANTS`` and the ``DemoConfig`` defaults (a test checks).
VARIANTS: tuple[str, ...] = ("answer", "calibration", "consistency", "adversarial")
DEFAULTS = {"steps": 100, "batch_size": 8, "learning_rate": 3e-3, "train_groups": 48,
            "draws": 3, "conflict_groups": 4, "threads": 1, "n_bootstrap": 1000}


def build_parser(prog: str = "modprobe finetune-demo") -> argparse.ArgumentParser:
    """The parser of ``modprobe finetune-demo``."""
    parser = options.new_parser(
        prog, "The organism demonstration of docs/finetune.md: train, evaluate, ablate "
              "(each step resumable).")
    options.add_out(parser, "demo folder (resumed when it exists)", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    options.add_training(parser, DEFAULTS, batch="rows per step",
                         steps="optimizer steps per variant", lr="LoRA learning rate",
                         threads="torch threads of training")
    parser.add_argument("--train-groups", type=cli.positive_int,
                        default=DEFAULTS["train_groups"], help="groups of training items")
    parser.add_argument("--draws", type=cli.positive_int, default=DEFAULTS["draws"],
                        help="perturbation seeds of the evaluation (one interference run "
                             "of one draw each, with the no-image text baseline)")
    parser.add_argument("--conflict-groups", type=cli.positive_int,
                        default=DEFAULTS["conflict_groups"],
                        help="groups of the conflict dataset")
    options.add_bootstrap(parser, default=DEFAULTS["n_bootstrap"])
    options.add_run_flags(parser, resume=None, figures=False)
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with a one-line reason)."""
    args = build_parser().parse_args(argv)
    import pandas as pd

    from modprobe.finetune.demo import DemoConfig, run_demo, variant_losses, wide

    config = DemoConfig(out=args.out, variants=tuple(v for v in args.variants.split(",") if v),
                        steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                        train_groups=args.train_groups, draws=args.draws,
                        conflict_groups=args.conflict_groups, n_bootstrap=args.bootstrap,
                        threads=args.threads, quiet=args.quiet)
    for name in config.variants:
        variant_losses(name)  # unknown names fail before anything runs
    table = run_demo(config)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(wide(table).to_string())
    return cli.EXIT_OK
