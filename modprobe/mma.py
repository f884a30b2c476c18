"""``python -m modprobe.mma``: MMA-Bench's audio-visual conditions on a model.

Every clip question (the visual class or the audio class, from listed options) under
each condition: aligned, misaligned (soundtracks swapped between clips), audio removed,
frames zeroed, a misleading caption, long irrelevant text::

    python -m modprobe.mma --model qwen2.5-omni-folder --data clips/ --out runs/mma
    python -m modprobe.mma --model tiny-omni/ --visual image --out runs/mma-tiny   # no video extra
    python -m modprobe.mma --model qwen2.5-omni-folder --data clips/ --out runs/mma --resume

Prints accuracy per condition and prompt type and the largest |Cohen's d| per span::

    misaligned | audio prompt: accuracy=0.250 ci=[0.125, 0.375] n=16 clips=16

See docs/mma.md for the clip folder layout and the reading of the tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modprobe import cli
from modprobe.stats import DEFAULT_RESAMPLES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modprobe.mma",
        description="Ask for the visual or the audio class of clips under MMA-Bench's "
                    "conditions; accuracy per condition with cluster-aware intervals, and "
                    "Cohen's d per layer of the attention each span gets under visual vs "
                    "audio prompts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, epilog=cli.EPILOG)
    parser.add_argument("--model", required=True, help="alias, hub id, or local folder")
    parser.add_argument("--data", default=None,
                        help="clip folder (clips.jsonl; docs/mma.md); default: synthetic "
                             "clips generated into RUN/data")
    parser.add_argument("--out", required=True, help="run folder; never overwritten")
    parser.add_argument("--conditions", default=None,
                        help="comma-separated conditions (default: aligned,misaligned,"
                             "audio_removed,frames_zeroed,caption,long_text)")
    parser.add_argument("--draws", type=cli.positive_int, default=3,
                        help="draws of the random conditions (misaligned, caption, long_text)")
    parser.add_argument("--letters", type=cli.positive_int, default=10_000,
                        help="random letters of the long_text condition")
    parser.add_argument("--visual", choices=("video", "image"), default="video",
                        help="show the frames as a video with its soundtrack (needs pip "
                             "install 'modprobe[video]'), or the middle frame as an image "
                             "with the soundtrack as audio")
    parser.add_argument("--clips", type=cli.positive_int, default=16,
                        help="synthetic clips to generate without --data")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8, help="clip questions per chunk")
    parser.add_argument("--limit", type=cli.positive_int, default=None,
                        help="only the first N clips")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1")
    parser.add_argument("--dtype", type=cli.dtype_name, default="auto",
                        help="auto, float32, bfloat16, float16")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=0,
                        help="seed of the bootstrap")
    parser.add_argument("--data-seed", type=cli.nonnegative_int, default=0,
                        help="seed of the conditions' draws and the generated clips")
    parser.add_argument("--table-format", choices=("parquet", "csv"), default="parquet",
                        help="format of the run's tables")
    parser.add_argument("--bootstrap", type=cli.positive_int, default=DEFAULT_RESAMPLES,
                        help="bootstrap replicates")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with a one-line reason)."""
    args = build_parser().parse_args(argv)
    cli.check_device(args.device)  # before the run folder is made
    from modprobe.errors import ModprobeError
    from modprobe.study.mma import MmaConfig, run_mma

    names = [n.strip() for n in args.conditions.split(",") if n.strip()] \
        if args.conditions else None
    if args.conditions is not None and not names:
        raise ModprobeError("--conditions names no condition; e.g. --conditions aligned,"
                            "misaligned")
    config = MmaConfig(
        model=args.model, data=args.data, out=args.out, conditions=names, draws=args.draws,
        letters=args.letters, visual=args.visual, batch_size=args.batch_size,
        limit=args.limit, clips=args.clips, device=args.device, dtype=args.dtype,
        seed=args.seed, data_seed=args.data_seed, table_format=args.table_format,
        n_bootstrap=args.bootstrap, figures=not args.no_figures,
        resume=args.resume)
    try:
        result = run_mma(config, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished chunks are saved. Continue with the same command "
              f"plus --resume (run folder: {Path(args.out)})", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    print()
    for line in result.summary["lines"]:
        print(line)
    print(f"\nrun folder: {result.out}")
    for path in result.figures:
        print(f"figure: {path}")
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
