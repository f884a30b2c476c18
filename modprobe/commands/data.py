"""``modprobe data colors|validate|tasks|validate-tasks|vocab``: datasets and task folders.

See docs/data.md and docs/interference.md.
"""


from __future__ import annotations

import argparse
from collections.abc import Sequence

from modprobe import cli
from modprobe.commands import options

#: ``modprobe.data.generate.VARIANTS`` and ``modprobe.data.schema.GROUPS`` (a test checks).
VARIANTS: tuple[str, ...] = ("paper", "lowres")
GROUPS: tuple[str, ...] = ("conflict", "text_irrelevant", "image_irrelevant")


def parse_tiers(values: Sequence[str]) -> list[int]:
    """Tiers from arguments such as ``0 3 5-8`` or ``0,3,5-8``."""
    tiers: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    tiers.extend(range(lo, hi + 1))
                else:
                    tiers.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"bad tier {part!r}; write tiers as 0 3 5-8") from None
    return sorted(set(tiers))


def build_parser(prog: str = "modprobe data") -> argparse.ArgumentParser:
    """The parser of ``modprobe data``."""
    parser = options.new_parser(prog, "Conflict datasets and interference tasks: generate "
                                      "and validate.")
    sub = options.add_subparsers(parser)

    gen = sub.add_parser("colors", help="render the color-recognition conflict dataset")
    options.add_out(gen, "output folder (must be empty)", required=True)
    gen.add_argument("--groups", type=cli.positive_int, required=True,
                     help="number of groups (shape + image color + text color)")
    options.add_seed(gen, "seed (same seed, same bytes)")
    gen.add_argument("--variant", choices=VARIANTS, default="paper",
                     help="paper: docs/science.md tiers d_v 0-13; lowres: 32x32, tiers 0-7")
    gen.add_argument("--tiers", nargs="+", default=None,
                     help="visual tiers, e.g. 0 3 5-8 (default: all)")
    gen.add_argument("--text-tiers", nargs="+", default=None,
                     help="text tiers, e.g. 0-2 (default: all)")
    gen.add_argument("--kinds", nargs="+", choices=GROUPS, default=list(GROUPS),
                     help="item kinds (default: all three)")
    gen.add_argument("--overwrite", action="store_true",
                     help="write into a non-empty --out, replacing the dataset there")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    val = sub.add_parser("validate", help="check a dataset folder against the schema (every "
                         "line, field and image); exit code 2 when it does not validate")
    val.add_argument("dir", help="dataset folder holding items.jsonl")

    tasks = sub.add_parser("tasks", help="write the color world's interference tasks "
                                         "(image-heavy and text-heavy items)")
    options.add_out(tasks, "output folder (must be empty)", required=True)
    tasks.add_argument("--groups", type=cli.positive_int, required=True, help="number of generator groups")
    options.add_seed(tasks, "seed (same seed, same bytes)")
    tasks.add_argument("--variant", choices=VARIANTS, default="lowres",
                       help="lowres (32x32, the organism's) or paper")
    tasks.add_argument("--format", choices=("choice", "open"), default="choice",
                       help="multiple choice (options listed) or open answer")
    tasks.add_argument("--options", type=int, default=4, help="options per question (2-6)")
    tasks.add_argument("--overwrite", action="store_true", help="replace an existing folder")

    check = sub.add_parser("validate-tasks", help="check an interference task folder")
    check.add_argument("dir", help="task folder holding items.jsonl")

    sub.add_parser("vocab", help="print the lowres variant's word vocabulary, one per line")
    return parser


@cli.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``modprobe data``; returns the exit code."""
    args = build_parser().parse_args(argv)
    from modprobe.data.dataset import load_dataset
    from modprobe.data.generate import generate_colors
    from modprobe.data.lowres import lowres_vocabulary
    from modprobe.data.tasks import load_tasks

    if args.command == "colors":
        try:
            tiers = parse_tiers(args.tiers) if args.tiers else None
            text_tiers = parse_tiers(args.text_tiers) if args.text_tiers else None
        except argparse.ArgumentTypeError as exc:
            raise cli.ModprobeError(f"--tiers/--text-tiers: {exc}") from None
        out = cli.check_out(args.out, overwrite=args.overwrite, what="dataset")
        try:
            path = generate_colors(
                out, args.groups, args.seed, variant=args.variant, tiers=tiers,
                text_tiers=text_tiers, kinds=args.kinds, overwrite=args.overwrite,
                progress=not args.quiet)
        except (ValueError, FileExistsError) as exc:  # argument checks, before any write
            raise cli.ModprobeError(str(exc)) from None
        dataset = load_dataset(path.parent)
        print(f"wrote {len(dataset)} items ({dataset.info['n_images']} images) to {path.parent}")
        return cli.EXIT_OK
    if args.command == "validate":
        dataset = load_dataset(args.dir)  # DatasetError: every problem, exit code 2
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(
            _count(item.group for item in dataset).items()))
        print(f"{args.dir}: {len(dataset)} valid items ({counts})")
        return cli.EXIT_OK
    if args.command == "tasks":
        from modprobe.data.color_tasks import generate_color_tasks

        out = cli.check_out(args.out, overwrite=args.overwrite, what="task dataset")
        try:
            path = generate_color_tasks(out, args.groups, args.seed, variant=args.variant,
                                        fmt=args.format, n_options=args.options,
                                        overwrite=args.overwrite)
        except (ValueError, FileExistsError) as exc:  # argument checks, before any write
            raise cli.ModprobeError(str(exc)) from None
        print(f"wrote {len(load_tasks(path.parent))} task items to {path.parent}")
        return cli.EXIT_OK
    if args.command == "validate-tasks":
        tasks = load_tasks(args.dir)  # DatasetError: every problem, exit code 2
        counts = _count(item.relevant for item in tasks)
        print(f"{args.dir}: {len(tasks)} valid task items (relevant image: "
              f"{counts.get('image', 0)}, text: {counts.get('text', 0)})")
        return cli.EXIT_OK
    print("\n".join(lowres_vocabulary()))
    return cli.EXIT_OK


def _count(values: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:  # type: ignore[attr-defined]
        counts[value] = counts.get(value, 0) + 1
    return counts

