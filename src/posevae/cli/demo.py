"""``posevae demo``, the main job: render the demo data, train the sharp preset, test, report."""

from __future__ import annotations

import argparse

from posevae.config import PRIORS
from posevae.jobs.demo import DEMO_PRESET, DEMO_TRAIN


def _demo(args: argparse.Namespace) -> None:
    from posevae.jobs.demo import run_demo

    overrides = {"num_epoch": args.epochs} if args.epochs else {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    run_demo(out=args.out, data=args.data, device=args.device, progress=not args.quiet, prior=args.prior,
             **overrides)


def add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``posevae`` subcommands."""
    p = subparsers.add_parser("demo", help=f"the main job: render the demo data, train the {DEMO_PRESET} "
                                           "preset, test, report")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--data", default="data/demo",
                   help="demo dataset folder, rendered if missing (default: data/demo)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default: the demo's budget, {DEMO_TRAIN['num_epoch']}; on a CPU "
                        "trained in bf16 where it has AMX or AVX-512 BF16, else in fp32, which takes longer)")
    p.add_argument("--prior", choices=PRIORS, default="fixed",
                   help="latent prior: N(0, I) as in the lab, or learned from the previous frame and pose "
                        "(default: fixed)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"training seed (default: the demo's, {DEMO_TRAIN['seed']}, which the README's "
                        "numbers come from)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: "
                                                    "auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_demo)
