r"""``modprobe finetune``: fine-tune a model so that it uses the relevant modality.

Examples::

    modprobe finetune --model organism --out runs/ft --steps 150 --calibration 1
    modprobe finetune --model llava --data data/interference --out runs/llava-ft \\
        --perturb MD,UF,RP,FB --consistency 0.01 --adversarial 1 --grad-accum 4
    accelerate launch -m modprobe.finetune --model llava --data DIR --out RUN   # several GPUs
    modprobe finetune --model llava --data DIR --out RUN --resume     # after a crash

Without ``--data`` it trains on generated organism-world items (the color world's
image-heavy and text-heavy tasks), written to ``RUN/data``. The result loads with
``modprobe.load(RUN)`` and feeds ``modprobe study --model RUN`` and
``modprobe interference --model RUN``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def build_parser(prog: str = "modprobe finetune") -> argparse.ArgumentParser:
    """The parser of ``modprobe finetune``."""
    parser = options.new_parser(
        prog, "Fine-tune a multimodal model (LoRA by default) with the answer loss on "
              "clean and perturbed items plus attention-calibration, consistency and "
              "masked-adversarial losses; writes a resumable run folder that "
              "modprobe.load(RUN) loads.")
    options.add_model(parser, help="alias, hub id or local folder")
    options.add_data(parser, "task folder whose items carry a 'relevant' field (image or "
                             "text; docs/interference.md); default: generate the color "
                             "world's tasks into RUN/data")
    parser.add_argument("--eval-data", default=None,
                        help="task folder of evaluation items (none may share content with "
                             "the training items); default: hold out --holdout of the groups")
    parser.add_argument("--holdout", type=float, default=0.25,
                        help="share of the data's groups held out for evaluation (RUN/eval; "
                             "0: train on everything)")
    options.add_out(parser, "run folder (never overwritten)", required=True)
    run = parser.add_argument_group("optimisation")
    run.add_argument("--steps", type=cli.positive_int, default=200, help="optimizer steps")
    run.add_argument("--batch-size", type=cli.positive_int, default=8, help="rows per micro-batch")
    run.add_argument("--grad-accum", type=cli.positive_int, default=1, help="micro-batches per step")
    run.add_argument("--lr", type=cli.positive_float, default=1e-4, help="AdamW learning rate")
    run.add_argument("--warmup", type=cli.nonnegative_int, default=0, help="linear warm-up steps")
    run.add_argument("--weight-decay", type=cli.nonnegative_float, default=0.0, help="AdamW weight decay")
    run.add_argument("--grad-clip", type=cli.nonnegative_float, default=1.0, help="max gradient norm (0: off)")
    options.add_seed(run, "seed of batches, perturbations, torch")
    mode = parser.add_argument_group("what is trained")
    mode.add_argument("--full", action="store_true",
                      help="full fine-tuning instead of LoRA (every parameter)")
    mode.add_argument("--lora-rank", type=cli.positive_int, default=8, help="LoRA rank")
    mode.add_argument("--lora-alpha", type=cli.positive_float, default=16.0, help="LoRA alpha")
    mode.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout")
    mode.add_argument("--lora-targets", type=_names, default=("q_proj", "v_proj"),
                      help="comma-separated leaf names of language-model linear layers")
    loss = parser.add_argument_group("losses (weights; 0 turns a term off)")
    loss.add_argument("--answer", type=float, default=1.0, help="answer cross-entropy")
    loss.add_argument("--calibration", type=float, default=0.0, help="attention calibration")
    loss.add_argument("--calibration-kind", default="cross_entropy",
                      help="cross_entropy or neg_log_mass (see docs/finetune.md)")
    loss.add_argument("--calibration-layers", type=_ints, default=None,
                      help="comma-separated decoder layers (default: all)")
    loss.add_argument("--calibration-heads", type=_ints, default=None,
                      help="comma-separated heads (default: all)")
    loss.add_argument("--consistency", type=float, default=0.0, help="clean/perturbed divergence")
    loss.add_argument("--consistency-kind", default="js", help="js or kl")
    loss.add_argument("--temperature", type=float, default=1.0, help="consistency temperature")
    loss.add_argument("--adversarial", type=float, default=0.0, help="masked adversarial loss")
    loss.add_argument("--adv-steps", type=int, default=2, help="ascent steps K")
    loss.add_argument("--adv-step-size", type=float, default=0.1, help="ascent step size")
    loss.add_argument("--adv-eps", type=float, default=1e-3, help="radius of the ball")
    loss.add_argument("--adv-norm", default="linf", help="linf or l2")
    loss.add_argument("--adv-on-perturbed", action="store_true",
                      help="also perturb the perturbed rows adversarially (needed when clean "
                           "prompts lack the irrelevant modality, as in the color world)")
    parser.add_argument("--perturb", type=_names, default=(),
                        help="comma-separated perturbations for the perturbed copy of each row "
                             "(modprobe.perturb names, e.g. MD,UF,RP,FB)")
    system = parser.add_argument_group("system")
    system.add_argument("--checkpoint-every", type=cli.positive_int, default=50, help="steps per checkpoint")
    options.add_device(system)
    system.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="autocast: auto = bf16 on GPU, fp32 on CPU")
    system.add_argument("--threads", type=cli.positive_int, default=None, help="torch CPU threads")
    options.add_run_flags(parser, resume="continue the run in --out from its last checkpoint",
                          figures=False)
    return parser


def config_from_args(args: argparse.Namespace) -> object:
    """The :class:`TrainConfig` of parsed arguments."""
    from modprobe.finetune.config import TrainConfig
    from modprobe.finetune.lora import LoraSettings
    from modprobe.finetune.step import LossConfig

    loss = LossConfig(
        answer=args.answer, calibration=args.calibration, consistency=args.consistency,
        adversarial=args.adversarial, calibration_kind=args.calibration_kind,
        calibration_layers=args.calibration_layers, calibration_heads=args.calibration_heads,
        consistency_kind=args.consistency_kind, temperature=args.temperature,
        adv_steps=args.adv_steps, adv_step_size=args.adv_step_size, adv_eps=args.adv_eps,
        adv_norm=args.adv_norm, adv_on_perturbed=args.adv_on_perturbed)
    return TrainConfig(
        out=args.out, steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
        learning_rate=args.lr, warmup_steps=args.warmup, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip or None, mode="full" if args.full else "lora",
        lora=LoraSettings(rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout,
                          targets=tuple(args.lora_targets)),
        loss=loss, perturbations=tuple(args.perturb), seed=args.seed,
        checkpoint_every=args.checkpoint_every, precision=args.precision, threads=args.threads,
        holdout=args.holdout, resume=args.resume)


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with a one-line reason)."""
    args = build_parser().parse_args(argv)
    # Expected failures (bad options or data, a refused run folder) are ModprobeErrors:
    # `cli.entry_point` prints them as one line and exits 2; anything else is a bug.
    from modprobe.finetune.trainer import FinetuneError, train
    from modprobe.loading import load, resolve_source

    try:
        config = config_from_args(args)
        config.check()
    except ValueError as err:  # LossConfig / TrainConfig option checks
        raise FinetuneError(str(err)) from None
    resolve_source(args.model)  # a typo fails before anything heavy happens
    from modprobe.finetune.trainer import RUN_KIND
    from modprobe.study.runfolder import check_run_folder

    device = cli.check_device(args.device)
    from accelerate import PartialState

    # The trainer's Accelerator shares this state: cpu=True is what lets accelerate see the
    # processes of a CPU (gloo) launch; without it every rank would train alone.
    state = PartialState(cpu=device == "cpu")
    if device == "cuda":  # one GPU per process under a launcher
        device = str(state.device)
    if state.is_main_process:  # the trainer's main process prepares --out for every process
        check_run_folder(config.out, config.resume, kind=RUN_KIND)  # writes nothing
    from modprobe.data.tasks import load_tasks

    data = load_tasks(args.data) if args.data is not None else None
    eval_data = load_tasks(args.eval_data) if args.eval_data is not None else None
    loaded = load(args.model, device=device, dtype=args.dtype)
    result = train(loaded, data, config, eval_data=eval_data, progress=not args.quiet)
    if not state.is_main_process:  # the main process reports for every process
        return 0
    last = result.log.iloc[-1].to_dict() if len(result.log) else {}
    terms = " ".join(f"{k}={v:.4g}" for k, v in last.items() if k not in ("step", "lr", "seconds"))
    print(f"trained {result.steps} steps ({result.trainable:,} parameters) in "
          f"{result.seconds:.0f} s; last step: {terms}")
    if result.heldout:
        print(result.heldout)
    print(f"run folder: {result.out}  (load it with modprobe.load({str(result.out)!r}))")
    return 0

