"""``posevae train``: train a model on a dataset in the lab layout, or resume a run.

    posevae train --DR DATA --save_root RUN [--preset lab|fast|sharp|tiny|template] [config options]
    posevae train --resume RUN
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from posevae.cli.options import add_config_options, build_config, preset_help
from posevae.config import MODEL_PRESETS, RunConfig
from posevae.errors import UserError


def _train(args: argparse.Namespace) -> None:
    from posevae.training import distributed
    from posevae.training.loop import train

    if args.resume:
        stored = Path(args.resume) / "config.json"
        if not stored.is_file():
            raise UserError(f"Nothing to resume in {args.resume}: {stored} does not exist. Pass the run "
                            "folder (the --save_root of the run).")
        base = RunConfig.from_dict(json.loads(stored.read_text()))
        cfg = build_config(args, base=base)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, save_root=str(args.resume)))
    else:
        cfg = build_config(args, preset=args.preset)
        if not cfg.data.DR:
            raise UserError("posevae train needs --DR DATASET_ROOT (the lab layout; `posevae data demo --out "
                            "DIR` makes one).")
    summary = train(cfg, resume=bool(args.resume), progress=not args.quiet)
    if not distributed.is_main():  # under torchrun rank 0 reports
        return
    print(f"Trained {summary['epochs']} epochs; best val PSNR {summary['best_val_psnr']:.2f} dB. Wrote "
          f"{summary['run']}/metrics.csv, {summary['run']}/checkpoints/ (last, best), {summary['run']}/tb/.")


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``posevae`` subcommands."""
    p = subparsers.add_parser("train", help="train a model on a dataset in the lab layout",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder exactly where it stopped")
    p.add_argument("--preset", choices=sorted(MODEL_PRESETS), default="lab", help=preset_help())
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_options(p, ["model", "data", "train", "sample"])
    p.set_defaults(func=_train)
