"""The ``posevae compare`` and ``posevae report`` subcommands (wired into :mod:`posevae.cli.main`).

    posevae compare --DR DATA --out DIR [train options] [--strategies None Monotonic Cyclical ...]
    posevae report RUN [RUN ...] --out DIR [--names NAME ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posevae.cli.options import add_config_options, build_config, preset_help
from posevae.config import KL_ANNEAL_TYPES, MODEL_PRESETS
from posevae.errors import UserError


def _compare(args: argparse.Namespace) -> None:
    from posevae.jobs.compare import compare

    if hasattr(args, "train.save_root"):
        raise UserError("posevae compare chooses each run's folder (OUT/runs/<name>): pass --out, not "
                        "--save_root.")
    cfg = build_config(args, preset=args.preset)
    index = compare(cfg, Path(args.out), list(args.strategies), progress=not args.quiet, gifs=args.gifs)
    print(f"Wrote {len(args.strategies)} runs to {args.out}/runs/ and the report: {index} "
          f"(table in {args.out}/table.md, figures in {args.out}/figures/).")


def _report(args: argparse.Namespace) -> None:
    from posevae.report.write import write_report

    index = write_report([Path(r) for r in args.runs], Path(args.out), args.names, gifs=args.gifs)
    print(f"Wrote the report: {index} (table in {args.out}/table.md, figures in {args.out}/figures/).")


def add_report_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare`` and ``report`` to the ``posevae`` subcommands."""
    from posevae.jobs.compare import DEFAULT_STRATEGIES

    p = subparsers.add_parser(
        "compare", help="train one run per KL annealing strategy (same seed and budget), test, and report",
        description="Train one run per configuration into OUT/runs/<name> (one after another; rerun the same "
                    "command to resume), test each best checkpoint when the dataset has test ground truth, "
                    "and write OUT/index.html, OUT/table.md|csv and OUT/figures/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output folder: runs/<name>/, figures/, table.md, index.html")
    p.add_argument("--strategies", nargs="+", default=list(DEFAULT_STRATEGIES), metavar="CONFIG",
                   help=f"strategies ({', '.join(KL_ANNEAL_TYPES)}) or named configurations "
                        "'name:field=value,...' of training options, e.g. 'Cyclical:kl_anneal_cycle=2'")
    p.add_argument("--preset", choices=sorted(MODEL_PRESETS), default="lab", help=preset_help())
    p.add_argument("--gifs", action=argparse.BooleanOptionalAction, default=True,
                   help="draw each run's validation video at its best epoch (predicted | true) as a GIF for "
                        "the page")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_options(p, ["model", "data", "train", "sample"])
    p.set_defaults(func=_compare)

    p = subparsers.add_parser(
        "report", help="draw the figures, table and HTML page from existing run folders",
        description="Read RUN/metrics.csv (and val_psnr_per_frame.csv, val_best_frames.npz, test/) of each "
                    "run folder and write OUT/index.html, OUT/table.md|csv and every figure as PNG and SVG "
                    "under OUT/figures/. Reads the run folders only: no model, no dataset.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by posevae train or compare")
    p.add_argument("--out", required=True, help="output folder of the report")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="legend names, one per run (default: the folder names)")
    p.add_argument("--gifs", action=argparse.BooleanOptionalAction, default=True,
                   help="draw each run's validation video at its best epoch (RUN/val_best_frames.npz, "
                        "written by training) as a GIF")
    p.add_argument("--device", help=argparse.SUPPRESS)  # ignored: the report rolls nothing out any more
    p.set_defaults(func=_report)
