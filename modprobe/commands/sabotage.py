"""``modprobe sabotage``: which modality's confident mistake drags the answer down.

    modprobe sabotage SOURCE --out DIR [--tau 0.7] [--weights equal|quality]
        [--fuse-joint] [--scale auto|unit|percent] [--gold auto|vision|text]
        [--scores candidates|vocab] [--bins 10] [--bootstrap N] [--seed S] [--no-figures]

SOURCE is a JSONL file of agent outputs (one line per item and agent: ``item, agent,
labels, confidence, gold``, optional ``quality, modality, cluster, group``, or a raw
self-assessment ``response`` instead of labels and confidence; see
`modprobe.analysis.sabotage.input`), closed API models included, or a study run folder
(``modprobe study``), whose vision-only, text-only and joint conditions are the
agents, or an interference run folder (``modprobe interference``), whose clean
and perturbed conditions are (`modprobe.analysis.sabotage.runs`; docs/sabotage.md). It prints per agent the accuracy, the rates
of potential and successful sabotage with intervals, top-1/3/5 and ECE, then the fusion's
top-1/3/5, and writes the report folder DIR (`modprobe.analysis.sabotage.report`).
Bad input exits with code 2 and one message naming the line and field; nothing is
written then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options

#: Defaults and choices of ``modprobe.analysis.sabotage.analysis`` (TAU), ``sabotage_input`` (SCALES)
#: and ``sabotage_runs`` (GOLDS, SCORES), repeated so --help need not load them (a test
#: checks they agree).
TAU = 0.70
SCALES = ("auto", "unit", "percent")
GOLDS = ("auto", "vision", "text")
SCORES = ("candidates", "vocab")


def build_parser(prog: str = "modprobe sabotage") -> argparse.ArgumentParser:
    """The parser of ``modprobe sabotage``."""
    parser = options.new_parser(
        prog, "Modality sabotage: each modality as an agent, late fusion, saboteurs "
              "and contributors, reliability, top-k coverage.")
    parser.add_argument("source", help="JSONL of agent outputs, or a study or interference "
                        "run folder")
    options.add_out(parser, "report folder to create (must not exist or be empty)",
                    required=True, path=True)
    parser.add_argument("--tau", type=float, default=TAU,
                        help="confidence at or above which a wrong top label is a potential "
                             "sabotage")
    parser.add_argument("--weights", choices=("equal", "quality"), default="equal",
                        help="fusion weights: 1 per agent, or its self-reported quality")
    parser.add_argument("--fuse-joint", action="store_true",
                        help="also sum the joint agent into the fusion; without it, joint "
                             "is the baseline the fusion is compared with")
    parser.add_argument("--scale", choices=SCALES, default="auto",
                        help="confidence scale of a JSONL: found per agent, or forced 0-1 "
                             "(unit) / 1-100 (percent)")
    parser.add_argument("--gold", choices=GOLDS, default="auto",
                        help="study runs: gold answer (auto: the image's color except on "
                             "image_irrelevant items)")
    parser.add_argument("--scores", choices=SCORES, default="candidates",
                        help="run folders: confidences renormalised over the candidate "
                             "answers, or full-vocabulary probabilities")
    parser.add_argument("--bins", type=cli.positive_int, default=10, help="calibration bins")
    options.add_bootstrap(parser, help="cluster-bootstrap replicates")
    options.add_seed(parser, "bootstrap seed")
    options.add_run_flags(parser, resume=None, quiet=False)
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 invalid input)."""
    args = build_parser().parse_args(argv)
    from modprobe.analysis.sabotage.analysis import analyze_sabotage
    from modprobe.analysis.sabotage.input import SabotageInputError
    from modprobe.analysis.sabotage.report import ReportFolderError, check_out, write_report
    from modprobe.analysis.sabotage.runs import load_agents

    try:
        if not 0.0 < args.tau <= 1.0:
            raise ValueError(f"--tau must be in (0, 1], got {args.tau}")
        if args.bins < 1:
            raise ValueError(f"--bins must be at least 1, got {args.bins}")
        check_out(args.out)
        outputs = load_agents(args.source, gold=args.gold, scores=args.scores,
                              scale=args.scale)
        report = analyze_sabotage(outputs, tau=args.tau, weights=args.weights,
                                  fuse_joint=args.fuse_joint, bins=args.bins,
                                  n_bootstrap=args.bootstrap, seed=args.seed)
    except (SabotageInputError, ReportFolderError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    figures = write_report(report, args.out, figures=not args.no_figures)
    print("\n".join(report.summary_lines()))
    print(f"report: {args.out} (summary.json, tables" +
          (f", {len(figures)} figures in {args.out / 'figures'}" if figures else "") + ")",
          file=sys.stderr)
    return 0

