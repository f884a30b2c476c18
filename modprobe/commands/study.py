"""``modprobe study``: run a modality-following study and write its run folder.

Examples::

    modprobe study --model organism --out runs/organism     # CPU, ~minutes
    modprobe study --model llava --data data/colors --out runs/llava --batch-size 16
    modprobe study --model llava --data data/colors --out runs/llava --resume

Without ``--data`` a color-conflict dataset is generated into ``RUN/data`` (the lowres
variant for the bundled organism, the paper's variant otherwise).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from modprobe import cli
from modprobe.commands import options

ORGANISM = "organism"


def build_parser(prog: str = "modprobe study") -> argparse.ArgumentParser:
    """The parser of ``modprobe study``."""
    parser = options.new_parser(
        prog, "Capture logit lens and attention mass of a multimodal model on a conflict "
              "dataset under vision-only, text-only and conflict prompts, then analyse "
              "modality following (TFR, balance point, oscillation) and draw the figures.")
    options.add_model(parser, default=ORGANISM)
    options.add_data(parser, "dataset folder (modprobe data colors --out DIR); "
                             "default: generate one into RUN/data")
    options.add_out(parser, "run folder (default: runs/<model>)")
    parser.add_argument("--groups", type=cli.positive_int, default=None,
                        help="groups to generate when --data is not given "
                             "(default: 12 for the organism, 4 otherwise)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8, help="items per batch")
    parser.add_argument("--limit", type=cli.positive_int, default=None,
                        help="only the first N items")
    parser.add_argument("--candidates", default=None,
                        help="comma-separated candidate answers (default: every answer in "
                             "the data)")
    options.add_device(parser)
    options.add_device_map(parser)
    parser.add_argument("--remote", choices=("ndif", "local"), default=None,
                        help="run every trace remotely through nnsight: ndif (a hub model "
                             "NDIF hosts; API key from NDIF_API_KEY or nnsight's config) or "
                             "local (nnsight's local simulation of a remote run); "
                             "docs/scale.md")
    parser.add_argument("--top-k", type=cli.positive_int, default=5,
                        help="top tokens kept per layer")
    options.add_seed(parser, "seed of the bootstrap")
    options.add_data_seed(parser, "seed of the generated dataset (without --data)")
    options.add_bootstrap(parser)
    parser.add_argument("--estimate", choices=("logistic", "monotone", "auto"),
                        default="auto",
                        help="balance point reported and used for regions (auto: the "
                             "recommended one; logistic: the paper's display; monotone: "
                             "no shape assumed); none without an established trend")
    parser.add_argument("--all-conflicts", action="store_true",
                        help="keep every conflict (default: the paper's filter, both "
                             "unimodal answers correct)")
    parser.add_argument("--axis", choices=("rel", "abs"), default="rel",
                        help="uncertainty axis: rel = dH_rel = 2(H_t-H_v)/(H_t+H_v), abs = "
                             "H_t-H_v in nats (the ambiguous region's radius, 0.5, is then "
                             "in nats)")
    parser.add_argument("--entropy-floor", type=cli.nonnegative_float, default=0.0,
                        help="floor on entropies (nats) before the axis; tames saturated "
                             "dH_rel")
    parser.add_argument("--causal", action="store_true",
                        help="also knock out image and context attention and patch the residual "
                             "stream between conditions, one layer at a time (docs/causal.md)")
    parser.add_argument("--lens", choices=("logit", "tuned"), default="logit",
                        help="tuned: also capture the tuned lens and rerun the oscillation "
                             "analysis on it (needs translators)")
    parser.add_argument("--translators", default=None,
                        help="tuned-lens translators file (default: the model folder's "
                             "tuned_lens.safetensors)")
    options.add_table_format(parser, alias=True)
    options.add_run_flags(parser, resume="continue an interrupted run in --out (same options)")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with a one-line reason)."""
    args = build_parser().parse_args(argv)
    from modprobe.study import StudyConfig, run_study

    out = Path(args.out or Path("runs") / Path(str(args.model)).name.replace("/", "_"))
    candidates = None
    if args.candidates is not None:
        candidates = [c.strip() for c in args.candidates.split(",")]
    config = StudyConfig(
        model=args.model, data=args.data, out=str(out), batch_size=args.batch_size,
        limit=args.limit, candidates=candidates, device=args.device, device_map=args.device_map,
        dtype=args.dtype,
        top_k=args.top_k, seed=args.seed, data_seed=args.data_seed, n_bootstrap=args.bootstrap,
        resume=args.resume,
        figures=not args.no_figures, groups=args.groups, axis=args.axis,
        entropy_floor=args.entropy_floor, balance_estimate=args.estimate,
        all_conflicts=args.all_conflicts, table_format=args.table_format, causal=args.causal,
        lens=args.lens, translators=args.translators, remote=args.remote)
    return options.run_and_report(lambda: run_study(config, progress=not args.quiet), out)
