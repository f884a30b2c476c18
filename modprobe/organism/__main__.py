"""``python -m modprobe.organism train --out DIR [--seed S] [--steps N] [--overwrite]``: train
the organism; ``train-av`` trains the audio-visual organism (``docs/mma.md``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from modprobe import cli
from modprobe.organism.config import OrganismConfig


def _parser() -> argparse.ArgumentParser:
    defaults = OrganismConfig()
    parser = argparse.ArgumentParser(
        prog="python -m modprobe.organism",
        description="Train the bundled model organism (a tiny LLaVA on the lowres color task).",
        epilog=cli.EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train from scratch and save_pretrained to --out",
                           epilog=cli.EPILOG)
    train.add_argument("--out", required=True,
                       help="folder to write (model, processor, log); must be empty")
    train.add_argument("--overwrite", action="store_true",
                       help="write into a non-empty --out, replacing the checkpoint there")
    train.add_argument("--seed", type=cli.nonnegative_int, default=defaults.seed)
    train.add_argument("--steps", type=cli.positive_int, default=defaults.steps)
    train.add_argument("--batch-size", type=cli.positive_int, default=defaults.batch_size)
    train.add_argument("--lr", type=cli.positive_float, default=defaults.learning_rate)
    train.add_argument("--threads", type=cli.positive_int, default=defaults.threads,
                       help="torch CPU threads (results are deterministic per seed and thread count)")
    train.add_argument("--eval-every", type=cli.positive_int, default=defaults.eval_every)
    train.add_argument("--probe-items", type=cli.positive_int, default=defaults.probe_items,
                       help="items per held-out probe set")
    train.add_argument("--quiet", action="store_true", help="do not print the log rows")
    _add_train_av(sub)
    return parser


def _add_train_av(sub: Any) -> None:
    from modprobe.organism.av import AVOrganismConfig

    defaults = AVOrganismConfig()
    train_av = sub.add_parser(
        "train-av", epilog=cli.EPILOG,
        help="train the audio-visual organism (a tiny Qwen2.5-Omni thinker on the clip task)")
    train_av.add_argument("--out", required=True,
                          help="folder to write (model, processor, log); must be empty")
    train_av.add_argument("--overwrite", action="store_true",
                          help="write into a non-empty --out, replacing the checkpoint there")
    train_av.add_argument("--seed", type=cli.nonnegative_int, default=defaults.seed)
    train_av.add_argument("--steps", type=cli.positive_int, default=defaults.steps)
    train_av.add_argument("--batch-size", type=cli.positive_int, default=defaults.batch_size)
    train_av.add_argument("--lr", type=cli.positive_float, default=defaults.learning_rate)
    train_av.add_argument("--threads", type=cli.positive_int, default=defaults.threads,
                          help="torch CPU threads (deterministic per seed and thread count)")
    train_av.add_argument("--eval-every", type=cli.positive_int, default=defaults.eval_every)
    train_av.add_argument("--probe-clips", type=cli.positive_int, default=defaults.probe_clips,
                          help="held-out clips per probe set")
    train_av.add_argument("--quiet", action="store_true", help="do not print the log rows")


def _show(row: dict[str, float]) -> None:
    print(" ".join(f"{k.removeprefix('acc/')}={v:.3g}" for k, v in row.items()), flush=True)


def _main_train_av(args: argparse.Namespace, out: Any) -> int:
    from modprobe.organism.av import AVOrganismConfig, train_av

    config = dataclasses.replace(
        AVOrganismConfig(), seed=args.seed, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, threads=args.threads, eval_every=args.eval_every,
        probe_clips=args.probe_clips)
    train_av(config, out, progress=None if args.quiet else _show)
    print(f"trained the audio-visual organism {config.steps} steps; saved to {out}")
    return cli.EXIT_OK


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m modprobe.organism``."""
    args = _parser().parse_args(argv)
    # Before training: a wrong --out must not cost the whole training run.
    out = cli.check_out(args.out, overwrite=args.overwrite, what="model")
    if args.command == "train-av":
        return _main_train_av(args, out)
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
    print(f"trained {config.steps} steps in {run.seconds:.0f} s wall, {run.cpu_seconds:.0f} s CPU "
          f"({run.steps_per_second:.2f} steps/s, {config.threads} threads); saved to {out}")
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
