"""``modprobe bench capture|finetune|causal|study [options]``: the benchmarks (see docs/performance.md)."""


from __future__ import annotations

import argparse
from typing import Any

from modprobe import cli
from modprobe.commands import options

#: ``modprobe.bench.variants.VARIANTS`` (a test checks they agree).
VARIANTS: tuple[str, ...] = ("bare", "capture", "naive", "tl")


def build_parser(prog: str = "modprobe bench") -> argparse.ArgumentParser:
    """The parser of ``modprobe bench`` and its subcommands.

    Args:
        prog: The program name shown in usage lines.

    Returns:
        The parser; its ``command`` is ``capture``, ``finetune``, ``causal`` or ``study``.
    """
    parser = options.new_parser(prog, "Benchmarks of modprobe (see docs/performance.md).")
    commands = options.add_subparsers(parser)
    _add_capture(commands)
    _add_finetune(commands)
    _add_causal(commands)
    _add_study(commands)
    return parser


def _add_geometry(parser: argparse.ArgumentParser, *, batch: int, note: str = "") -> None:
    """The options of the benchmark model's shape (:class:`modprobe.bench.geometry.BenchGeometry`)."""
    parser.add_argument("--tokens", type=cli.positive_int, default=640,
                        help=f"tokens per row{note} (640: LLaVA-1.5 with 576 image tokens; "
                             "2900: LLaVA-NeXT)")
    parser.add_argument("--batch", type=cli.positive_int, default=batch,
                        help=f"rows per batch{note}")
    parser.add_argument("--layers", type=cli.positive_int, default=32,
                        help=f"decoder layers{note}")
    parser.add_argument("--heads", type=cli.positive_int, default=32,
                        help=f"attention heads per layer{note}")
    parser.add_argument("--hidden", type=cli.positive_int, default=256,
                        help=f"residual width{note} (head width = hidden / heads)")
    parser.add_argument("--intermediate", type=cli.positive_int, default=512,
                        help=f"MLP width{note}")


def _add_capture(commands: Any) -> None:
    bench = commands.add_parser(
        "capture",
        help="capture vs bare forward vs naive eager route vs transformer-lens",
        description=(
            "Median time and peak memory growth of a bare SDPA forward, modprobe's capture "
            "(lens + attention mass, all layers and heads), the naive eager route "
            "(output_attentions + output_hidden_states) and transformer-lens run_with_cache, "
            "on a model with LLaVA-1.5-7B's attention geometry. The last line is "
            "'capture/bare time=X mem=Y; naive/capture time=Z mem=W'."))
    _add_geometry(bench, batch=1)
    bench.add_argument("--repeats", type=cli.positive_int, default=3,
                       help="timed runs per child process, after one warm-up run")
    bench.add_argument("--rounds", type=cli.positive_int, default=2,
                       help="child processes per variant, in alternating order")
    bench.add_argument("--variants", default=",".join(VARIANTS),
                       help=f"comma-separated subset of {','.join(VARIANTS)}")
    options.add_device(bench, default="cpu", dtype=False, help="cpu or cuda (cuda:N)")
    bench.add_argument("--mem-limit-gb", type=cli.positive_float, default=16.0,
                       help="address-space cap of each child process (CPU only); lowered to "
                            "what the machine has free minus 2 GB")
    bench.add_argument("--inline", action="store_true",
                       help="run every variant in this process, uncapped (quick checks only)")
    bench.add_argument("--no-paired", action="store_true",
                       help="skip the paired bare/capture timing child (capture/bare time is "
                            "then the ratio of the separate children's medians)")
    bench.add_argument("--pairs", type=cli.positive_int, default=8,
                       help="alternating bare/capture pairs per paired-timing child")
    bench.add_argument("--timeout-s", type=cli.positive_float, default=3600.0,
                       help="wall-clock limit of one child process")


def _add_finetune(commands: Any) -> None:
    tune = commands.add_parser(
        "finetune",
        help="time and peak memory of a training step with each fine-tuning loss",
        description=(
            "Time and peak memory growth of one optimizer step (clean + perturbed batch): "
            "answer loss only (plain), + attention calibration, + JS consistency, + masked "
            "adversarial with K=1 and K=2, alternating step by step in one process, on the "
            "bundled organism and on a LLaVA-geometry model with a small hidden size. The "
            "last line is 'finetune/plain time: calibration=X consistency=Y "
            "adversarial_k1=Z adversarial_k2=W' (for the last model run)."))
    tune.add_argument("--models", default="organism,llava-geometry",
                      help="comma-separated subset of organism,llava-geometry, in run order")
    _add_geometry(tune, batch=2, note=" of the LLaVA-geometry model")
    tune.add_argument("--organism-rows", type=cli.positive_int, default=16, help="rows per organism batch")
    tune.add_argument("--repeats", type=cli.positive_int, default=5,
                      help="timed steps per variant, after one warm-up step each")
    tune.add_argument("--train", choices=("lora", "full"), default="lora",
                      help="rank-8 LoRA on q_proj/v_proj (default) or every weight")
    options.add_device(tune, default="cpu", dtype=False, help="cpu or cuda (cuda:N)")


def _add_causal(commands: Any) -> None:
    knock = commands.add_parser(
        "causal",
        help="knockout and patching sweeps over all layers relative to one capture",
        description=(
            "Median time of one capture, a knockout sweep (one forward per layer) and a "
            "patching sweep over all layers, on the benchmark geometry. The last line is "
            "'knockout sweep/capture time=X (L layers); patching sweep/capture time=Y'."))
    _add_geometry(knock, batch=1)
    knock.add_argument("--repeats", type=cli.positive_int, default=3, help="timed runs of each")
    options.add_device(knock, default="cpu", dtype=False, help="cpu or cuda (cuda:N)")


def _add_study(commands: Any) -> None:
    study = commands.add_parser(
        "study", help="items per second of a study with 1 and N data-parallel processes",
        description=("Wall time of modprobe study with one process and with "
                     "torchrun --nproc-per-node N on the same items; the last line is "
                     "'study Nproc/1proc items/s=R'. On GPUs: --device cuda (one per rank)."))
    study.add_argument("--model", default="organism", help="alias or model folder")
    study.add_argument("--limit", type=cli.positive_int, default=48, help="items per run")
    study.add_argument("--batch-size", type=cli.positive_int, default=4, help="items per chunk")
    study.add_argument("--processes", type=cli.positive_int, default=2,
                       help="processes compared with one")
    study.add_argument("--threads", type=cli.positive_int, default=1,
                       help="CPU threads per process")
    options.add_device(study, default="cpu", dtype=False, help="cpu or cuda")


def _study(args: argparse.Namespace) -> int:
    from modprobe.bench.study import StudyBenchOptions, run_study_bench

    device = cli.check_device(args.device)
    try:
        options = StudyBenchOptions(model=args.model, limit=args.limit,
                                    batch_size=args.batch_size, processes=args.processes,
                                    threads=args.threads, device=device)
    except ValueError as err:  # option checks, before any work
        raise cli.ModprobeError(str(err)) from None
    run_study_bench(options)
    return cli.EXIT_OK


def _causal(args: argparse.Namespace) -> int:
    from modprobe.bench.causal import CausalBenchOptions, run_causal_bench
    from modprobe.bench.geometry import BenchGeometry

    device = cli.check_device(args.device)
    try:
        geometry = BenchGeometry(layers=args.layers, heads=args.heads, hidden=args.hidden,
                                 intermediate=args.intermediate, tokens=args.tokens,
                                 batch=args.batch)
    except ValueError as err:  # geometry checks, before any work
        raise cli.ModprobeError(str(err)) from None
    run_causal_bench(CausalBenchOptions(geometry, repeats=args.repeats, device=device))
    return cli.EXIT_OK


def _finetune(args: argparse.Namespace) -> int:
    from modprobe.bench.finetune import FinetuneBenchOptions, run_finetune_bench
    from modprobe.bench.geometry import BenchGeometry

    device = cli.check_device(args.device)
    try:
        options = FinetuneBenchOptions(
            models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
            geometry=BenchGeometry(layers=args.layers, heads=args.heads, hidden=args.hidden,
                                   intermediate=args.intermediate, tokens=args.tokens,
                                   batch=args.batch),
            organism_rows=args.organism_rows, repeats=args.repeats, train=args.train,
            device=device)
    except ValueError as err:  # option checks, before any work
        raise cli.ModprobeError(str(err)) from None
    run_finetune_bench(options)
    return 0


def _capture(args: argparse.Namespace) -> int:
    from modprobe.bench.capture import CaptureBenchOptions, run_capture_bench
    from modprobe.bench.geometry import BenchGeometry

    device = cli.check_device(args.device)
    try:
        geometry = BenchGeometry(layers=args.layers, heads=args.heads, hidden=args.hidden,
                                 intermediate=args.intermediate, tokens=args.tokens,
                                 batch=args.batch)
        options = CaptureBenchOptions(
            geometry=geometry, repeats=args.repeats, rounds=args.rounds,
            variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
            device=device, mem_limit_gb=args.mem_limit_gb,
            isolation="inline" if args.inline else "process", timeout_s=args.timeout_s,
            paired=not args.no_paired, pairs=args.pairs)
    except ValueError as err:  # geometry and variant checks, before any work
        raise cli.ModprobeError(str(err)) from None
    run_capture_bench(options)
    return cli.EXIT_OK


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``modprobe bench``; returns the exit code."""
    args = build_parser().parse_args(argv)
    run = {"capture": _capture, "finetune": _finetune, "causal": _causal, "study": _study}
    return run[args.command](args)
