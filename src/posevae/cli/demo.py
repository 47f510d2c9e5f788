"""``posevae demo``, the main job: render the demo data, train the sharp preset, test, report."""

from __future__ import annotations

import argparse


def _demo(args: argparse.Namespace) -> None:
    from posevae.jobs.demo import run_demo

    overrides = {"num_epoch": args.epochs} if args.epochs else {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    run_demo(out=args.out, data=args.data, device=args.device, progress=not args.quiet, prior=args.prior,
             **overrides)


def add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``posevae`` subcommands."""
    p = subparsers.add_parser("demo", help="the main job: render the demo data, train the sharp preset, "
                                           "test, report")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--data", default="data/demo", help="demo dataset folder, rendered if missing")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the demo's budget, 6; in bf16 where the CPU has "
                        "AMX or AVX-512 BF16, else fp32, about 1.6x slower)")
    p.add_argument("--prior", choices=["fixed", "learned"], default="fixed",
                   help="latent prior: N(0, I) as in the lab, or learned from the previous frame and pose")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed (default: the demo's, 1, which the README's numbers come from)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demo)
