r"""``modprobe mma``: MMA-Bench's audio-visual conditions on a model.

Every clip question (the visual class or the audio class, from listed options) under
each condition: aligned, misaligned (soundtracks swapped between clips), audio removed,
frames zeroed, a misleading caption, long irrelevant text::

    modprobe mma --model qwen2.5-omni-folder --data clips/ --out runs/mma
    modprobe mma --model tiny-omni/ --visual image --out runs/mma-tiny   # no video extra
    modprobe mma --model qwen2.5-omni-folder --data clips/ --out runs/mma --resume

Prints accuracy per condition and prompt type and the largest absolute Cohen's d per span::

    misaligned | audio prompt: accuracy=0.250 ci=[0.125, 0.375] n=16 clips=16

See docs/mma.md for the clip folder layout and the reading of the tables; the finished
run loads back with ``modprobe.load_run(RUN)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from modprobe import cli
from modprobe.commands import options


def build_parser(prog: str = "modprobe mma") -> argparse.ArgumentParser:
    """The parser of ``modprobe mma``.

    Args:
        prog: The command as users type it.

    Returns:
        The parser.
    """
    parser = options.new_parser(
        prog, "Ask for the visual or the audio class of clips under MMA-Bench's "
              "conditions; accuracy per condition with cluster-aware intervals, and "
              "Cohen's d per layer of the attention each span gets under visual vs "
              "audio prompts.")
    parser.add_argument("--model", required=True,
                        help="alias, hub id, or local folder (an audio-visual model such as "
                             "Qwen2.5-Omni; av-organism: the bundled tiny one, with "
                             "--visual image)")
    options.add_data(parser, "clip folder (clips.jsonl; docs/mma.md); default: synthetic "
                             "clips generated into RUN/data")
    options.add_out(parser, "run folder; never overwritten", required=True)
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
    parser.add_argument("--batch-size", type=cli.positive_int, default=8,
                        help="clip questions per chunk")
    parser.add_argument("--limit", type=cli.positive_int, default=None,
                        help="only the first N clips")
    options.add_device(parser)
    options.add_seed(parser, "seed of the bootstrap")
    options.add_data_seed(parser, "seed of the conditions' draws and the generated clips")
    options.add_table_format(parser)
    options.add_bootstrap(parser)
    options.add_run_flags(parser, resume="continue an interrupted run")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``modprobe mma``.

    Args:
        argv: The arguments after ``modprobe mma`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code (2 for bad input, with a one-line reason).
    """
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
    return options.run_and_report(lambda: run_mma(config, progress=not args.quiet),
                                  Path(args.out))
