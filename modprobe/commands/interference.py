r"""``modprobe interference``: modality interference, on a model or from a table.

On a model (every item clean and under each perturbation of its irrelevant modality)::

    modprobe interference --model organism --out runs/interference     # CPU, minutes
    modprobe interference --model llava --data tasks/ --out runs/llava \\
        --perturb UF,MD,RI,FB,FW --ri-folder photos/ --draws 5
    modprobe interference --model llava --data tasks/ --out runs/llava --resume

From a table of predictions of any model (API models included), columns ``id,
perturbation, answer, gold`` (clean rows have perturbation ``clean``; optional
``cluster``, ``options`` as ``red|blue|green``, ``relevant``)::

    modprobe interference predictions.csv --out runs/api-model

Both print one line per condition::

    MD: accuracy=0.792 ci=[0.700, 0.860] delta=0.125 ci=[0.070, 0.210] n=48

Two runs of the same items, compared item by item (paired differences B minus A, with a
cluster interval and the exact sign-flip p)::

    modprobe interference compare runs/base runs/finetuned
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modprobe import cli
from modprobe.commands import options

#: ``modprobe.perturb.TEXT_BASELINES`` and its default (a test checks they agree; the
#: perturbations import numpy and PIL, and --help stays fast).
TEXT_BASELINES = ("noise", "none")
DEFAULT_TEXT_BASELINE = "noise"
#: ``InterferenceConfig.draws``, the perturbation draws of a run.
DRAWS = 5

def build_parser(prog: str = "modprobe interference") -> argparse.ArgumentParser:
    """The parser of ``modprobe interference``."""
    parser = options.new_parser(
        prog, "Perturb the task-irrelevant modality (text for image-heavy items, the "
              "image for text-heavy ones) and measure accuracy, the flip rate delta "
              "with paired cluster-aware intervals, and where in the layers the "
              "perturbed span takes the answer position's attention. "
              f"'{prog} compare RUN_A RUN_B' compares two runs of the same items.")
    parser.add_argument("table", nargs="?", default=None,
                        help="CSV of predictions (id, perturbation, answer, gold [, cluster, "
                             "options, relevant]); analyse it instead of running a model")
    options.add_model(parser, default=None,
                      help="alias (organism, llava, qwen2-vl, ...), hub id, or local folder "
                           "(default: organism, unless a TABLE is given)")
    options.add_data(parser, "task folder (items.jsonl with a relevant field; docs/"
                             "interference.md); default: the color world's tasks in RUN/data")
    options.add_out(parser, "run folder (default: runs/interference-<model>); never "
                            "overwritten")
    parser.add_argument("--perturb", default=None,
                        help="comma-separated perturbations (default: UF,MD,OCR,RI,FB,FW; "
                             "RP too with --text-baseline none)")
    parser.add_argument("--text-baseline", choices=TEXT_BASELINES, default=DEFAULT_TEXT_BASELINE,
                        help="clean input of text-heavy items: a random-noise image (paper "
                             "003; RI/FB/FW replace it) or no image")
    parser.add_argument("--groups", type=cli.positive_int, default=None,
                        help="color-world groups to generate without --data "
                             "(default 12 for the organism, 8 otherwise)")
    parser.add_argument("--format", choices=("open", "choice"), default=None,
                        help="answer format of generated tasks (default: open for the "
                             "organism, choice otherwise)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=16, help="items per batch")
    parser.add_argument("--limit", type=cli.positive_int, default=None, help="only the first N items")
    parser.add_argument("--image-size", type=cli.positive_int, nargs=2, metavar=("W", "H"), default=None,
                        help="size of RP/RI/FB/FW images (default: the processor's)")
    parser.add_argument("--ri-folder", default=None,
                        help="folder of real irrelevant images for RI (default: generated "
                             "scenes without the asked object)")
    parser.add_argument("--uf-sentences", type=cli.positive_int, default=3, help="unrelated facts per UF")
    options.add_device(parser)
    options.add_device_map(parser)
    parser.add_argument("--top-k", type=cli.positive_int, default=5, help="lens top tokens kept per layer")
    options.add_seed(parser, "seed of the bootstrap")
    options.add_data_seed(parser, "seed of the perturbations (draw 0; the other draws derive "
                                  "theirs from it) and the generated data")
    parser.add_argument("--draws", type=cli.positive_int, default=DRAWS,
                        help="perturbation draws: every item runs clean and perturbed once "
                             "per draw, each with its own seed; intervals average each item "
                             "over its draws")
    options.add_bootstrap(parser)
    parser.add_argument("--cluster", default="auto",
                        help="TABLE form: cluster column (auto: 'cluster' if present; none)")
    parser.add_argument("--no-attention", action="store_true",
                        help="logit lens only (models whose attention cannot be read, e.g. "
                             "Mllama's cross-attention layers)")
    parser.add_argument("--allow-train-overlap", action="store_true",
                        help="evaluate a fine-tuning run (--model RUN) on items it was trained "
                             "on (refused otherwise; by default RUN's held-out items are used)")
    options.add_table_format(parser)
    options.add_run_flags(parser, resume="continue an interrupted run")
    return parser


def run_table(args: argparse.Namespace) -> int:
    """The TABLE form: analyse a CSV of predictions into ``--out``."""
    import pandas as pd

    from modprobe.analysis.following.report import cluster_column
    from modprobe.analysis.interference.effects import analyze_interference, read_predictions
    from modprobe.io import write_csv, write_json
    from modprobe.study.interference_report import draw_figures, radar_axes, radar_list

    path = Path(args.table)
    if args.model or args.data or args.resume:
        raise ValueError("a TABLE is analysed on its own: drop --model, --data and --resume")
    if not path.is_file():
        raise ValueError(f"table {path} not found; give a CSV with columns id, perturbation, "
                         "answer, gold")
    out = Path(args.out or Path("runs") / f"interference-{path.stem}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"output folder {out} already exists and is not empty; choose "
                         "another --out (modprobe never overwrites results)")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"table {path} is not a readable CSV ({exc})") from None
    table = read_predictions(raw, source=str(path))
    cluster = {"auto": cluster_column(table)[0], "none": None}.get(args.cluster, args.cluster)
    report = analyze_interference(table, cluster=cluster, n_bootstrap=args.bootstrap,
                                  seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "flips.csv", report.per_item)
    write_csv(out / "draws.csv", report.per_draw)
    summary = {"table": str(path), "n_items": int(table["id"].nunique()), **report.to_dict(),
               "radar": radar_list(radar_axes(table, report))}
    write_json(out / "summary.json", summary)
    for line in report.lines():
        print(line)
    if not args.no_figures:
        for figure in draw_figures(out / "figures", {path.stem: (summary, pd.DataFrame())}):
            print(f"figure: {figure}")
    print(f"\noutput folder: {out}")
    return 0


def build_compare_parser(prog: str = "modprobe interference compare") -> argparse.ArgumentParser:
    """The parser of ``modprobe interference compare RUN_A RUN_B``."""
    parser = options.new_parser(
        prog, "Paired comparison of two interference runs of the same items: per "
              "perturbation, the difference (B minus A) in flip rate and accuracy, item by "
              "item, with its cluster interval and exact sign-flip p.")
    parser.add_argument("run_a", help="run folder A (with its items table) or a predictions CSV")
    parser.add_argument("run_b", help="run folder B, over the same items")
    options.add_bootstrap(parser)
    options.add_seed(parser, "bootstrap and sign-flip seed")
    parser.add_argument("--json", default=None,
                        help="also write the comparison to this JSON file (must not exist)")
    return parser


def _compare_input(path: Path) -> Any:
    """A run folder's items table, or a predictions CSV read as the TABLE form reads it."""
    import pandas as pd

    from modprobe.analysis.interference.effects import read_predictions
    from modprobe.io import table_path
    from modprobe.study.runfolder import read_table

    if path.is_dir():
        items = table_path(path, "items")
        if not items.is_file():
            raise ValueError(f"{path} has no items table (items.parquet or items.csv): not "
                             "a finished interference run folder (finish it with --resume, "
                             "or give a predictions CSV)")
        return read_table(items)
    if not path.is_file():
        raise ValueError(f"{path} not found; give an interference run folder or a "
                         "predictions CSV")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return read_predictions(raw, source=str(path))


def run_compare(argv: Sequence[str]) -> int:
    """The ``compare`` form: paired differences of two runs, printed (and as JSON)."""
    args = build_compare_parser().parse_args(argv)
    from modprobe.analysis.interference.compare import compare_interference
    from modprobe.io import write_json

    if args.json is not None and Path(args.json).exists():
        raise ValueError(f"--json {args.json} already exists; choose a new file (modprobe "
                         "never overwrites results)")
    a, b = Path(args.run_a), Path(args.run_b)
    names = (a.name or str(a), b.name or str(b))
    if names[0] == names[1]:
        names = (str(a), str(b))
    result = compare_interference(_compare_input(a), _compare_input(b), names=names,
                                  n_bootstrap=args.bootstrap, seed=args.seed)
    for line in result.lines():
        print(line)
    if args.json is not None:
        write_json(Path(args.json), result.to_dict())
        print(f"\ncomparison: {args.json}")
    return 0


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with a one-line reason)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        try:
            return run_compare(argv[1:])
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    if args.table is None:
        cli.check_device(args.device)  # before the run folder is made
    from modprobe.adapters import AdapterError
    from modprobe.data import DatasetError
    from modprobe.loading import ModelNotFoundError
    from modprobe.perturb import PerturbationError
    from modprobe.study.interference import InterferenceConfig, run_interference
    from modprobe.study.runfolder import StudyError

    bad_input = (StudyError, DatasetError, ModelNotFoundError, AdapterError,
                 PerturbationError, ValueError, FileNotFoundError)
    if args.table is not None:
        try:
            return run_table(args)
        except bad_input as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    model = args.model or "organism"
    out = Path(args.out or Path("runs") / f"interference-{Path(model).name}")
    try:
        names = [n.strip() for n in args.perturb.split(",") if n.strip()] if args.perturb \
            else None
        if args.perturb is not None and not names:
            raise ValueError("--perturb names no perturbation; e.g. --perturb UF,MD,RP")
        config = InterferenceConfig(
            model=model, data=args.data, out=str(out), perturb=names,
            batch_size=args.batch_size, limit=args.limit, device=args.device,
            device_map=args.device_map, dtype=args.dtype,
            top_k=args.top_k, seed=args.seed, data_seed=args.data_seed,
            n_bootstrap=args.bootstrap, resume=args.resume,
            figures=not args.no_figures, groups=args.groups, format=args.format,
            image_size=list(args.image_size) if args.image_size else None,
            ri_folder=args.ri_folder, uf_sentences=args.uf_sentences,
            attention=not args.no_attention, table_format=args.table_format,
            allow_train_overlap=args.allow_train_overlap,
            text_baseline=args.text_baseline, draws=args.draws)
        return options.run_and_report(
            lambda: run_interference(config, progress=not args.quiet), out)
    except bad_input as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

