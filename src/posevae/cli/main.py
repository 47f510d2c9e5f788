"""`posevae` command line: train | test | transfer | convert | demo | data demo|poses | compare | report.

Options are generated from the config dataclasses, so each is defined once; the lab's flag names
(``--DR``, ``--save_root``, ``--kl_anneal_type``, ``--F_dim`` ...) are the option names, and each also has a
dashed spelling (``--kl-anneal-type``). Only options the user typed override the preset and the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posevae.config import (
    MODEL_PRESETS,
    DataConfig,
    ModelConfig,
    RunConfig,
    SampleConfig,
    TrainConfig,
    fit_kl_cycles_to_run,
)
from posevae.errors import UserError

SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "sample": SampleConfig}

HELP = {
    "DR": "dataset root in the lab layout (LAB4_Dataset)",
    "save_root": "run folder (metrics.csv, checkpoints/, tb/)",
    "downsample": "latent = frame / downsample (1 = the lab's model)",
    "frame_skip": "feed the previous frame's pixels to the generator's last stage",
    "skips": "U-Net skips: light encoders of the previous frame and next pose feed the generator at every scale",
    "skip_width": "channels of the skip encoders at full resolution (doubled at each halving)",
    "warp": "blend the output with the previous frame warped by a predicted full-resolution flow",
    "gdl_weight": "weight of the gradient-difference (edge) loss beside the MSE (0 = off, the lab's loss)",
    "train_vi_len": "frames per training clip",
    "stride": "frames between clip starts (default: train_vi_len, non-overlapping)",
    "val_vi_len": "frames of the validation video",
    "partial": "fraction of the training frames used",
    "cache_dir": "folder for decoded frames (default DR/.posevae_cache)",
    "lr_schedule": "cosine annealing (default), the lab's multistep, or constant",
    "grad_clip": "max gradient norm (0 = off)",
    "tfr": "teacher-forcing ratio at the start",
    "tfr_sde": "epoch at which teacher forcing starts to decay",
    "tfr_d_step": "teacher-forcing decay per epoch",
    "tf_per": "draw teacher forcing once per epoch (lab) or per batch",
    "kl_norm": "normalise the KL by every latent element (default) or by the batch size (lab template)",
    "max_bad_steps": "stop after this many non-finite losses in a row",
    "device": "auto (CUDA when present), cpu, cuda, cuda:N",
    "precision": "auto = bf16 autocast on CUDA and on CPUs with AMX, else fp32",
    "noise_scale": "test-time latent noise: z ~ N(0, s^2 I), or N(mu_p, (s sigma_p)^2) with the learned prior",
    "prior": "N(0, I) as in the lab (fixed), or p(z | previous frame, pose) learned as in SVG-LP",
    "variant": "posevae (the lab model, fixed) or template (the course template's model exactly, quirks kept)",
    "log_wandb": "also log to Weights & Biases (needs `pip install wandb`)",
    "compile": "torch.compile the model for training (pays off on GPUs; slower than eager on the CPUs measured)",
}


def _option_type(f: dataclasses.Field, hints: dict[str, Any]) -> dict[str, Any]:
    hint = hints[f.name]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return {"choices": list(args)}
    if origin is tuple:
        return {"type": int, "nargs": "+"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)][0]
        return {"type": inner}
    return {"type": hint}


def add_config_options(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    for section in sections:
        cls = SECTIONS[section]
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(f"{section} options")
        for f in dataclasses.fields(cls):
            flags = [f"--{f.name}"]
            if "_" in f.name:
                flags.append(f"--{f.name.replace('_', '-')}")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            help_text = HELP.get(f.name, "")
            group.add_argument(*flags, dest=f"{section}.{f.name}", default=argparse.SUPPRESS,
                               help=f"{help_text} (default: {default})".strip(), **_option_type(f, hints))


def explicit_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config values the user typed, as {'train': {'lr': ...}, ...}."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            out[section][name] = tuple(value) if isinstance(value, list) else value
    return out


def build_config(args: argparse.Namespace, base: RunConfig | None = None, preset: str | None = None,
                 defaults: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """base (or defaults) <- preset (model) <- command defaults <- options typed by the user.

    A new run (no ``base``) whose KL annealing cycles were not chosen gets them fitted to its length
    (:func:`posevae.config.fit_kl_cycles_to_run`), with one line on stderr saying so.
    """
    d = (base or RunConfig()).to_dict()
    if preset:
        d["model"].update(MODEL_PRESETS[preset])
    for section, values in (defaults or {}).items():
        d[section].update(values)
    typed = explicit_options(args)
    for section, values in typed.items():
        d[section].update(values)
    chosen = typed["train"].keys() | (defaults or {}).get("train", {}).keys()
    if base is None and "kl_anneal_cycle" not in chosen:
        notice = fit_kl_cycles_to_run(d["train"])
        if notice:
            print(notice, file=sys.stderr)
    return RunConfig.from_dict(d)


def _train(args: argparse.Namespace) -> None:
    from posevae.training import distributed
    from posevae.training.loop import train

    if args.resume:
        stored = Path(args.resume) / "config.json"
        if not stored.is_file():
            raise UserError(f"Nothing to resume in {args.resume}: {stored} does not exist. Pass the run folder "
                            "(the --save_root of the run).")
        base = RunConfig.from_dict(json.loads(stored.read_text()))
        cfg = build_config(args, base=base)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, save_root=str(args.resume)))
    else:
        cfg = build_config(args, preset=args.preset)
        if not cfg.data.DR:
            raise UserError("posevae train needs --DR DATASET_ROOT (the lab layout; `posevae data demo --out DIR` "
                            "makes one).")
    summary = train(cfg, resume=bool(args.resume), progress=not args.quiet)
    if not distributed.is_main():  # under torchrun rank 0 reports
        return
    print(f"Trained {summary['epochs']} epochs; best val PSNR {summary['best_val_psnr']:.2f} dB. Wrote "
          f"{summary['run']}/metrics.csv, {summary['run']}/checkpoints/ (last, best), {summary['run']}/tb/.")


def _db(value: float | None) -> str:
    """A PSNR for a printed summary; n/a when there is none (a person metric without any pose label)."""
    return "n/a" if value is None else f"{value:.2f} dB"


def _test(args: argparse.Namespace) -> None:
    from posevae.evaluation.predict import test_run

    summary = test_run(args.ckpt, args.DR, args.out, noise_scale=args.noise_scale, seed=args.seed,
                       device=args.device, z_mode=args.z_mode, progress=not args.quiet,
                       num_frames=args.num_frames, samples=args.samples,
                       allow_unequal_lengths=args.allow_unequal_lengths)
    n_seq = len(summary["sequences"])
    print(f"Wrote {args.out}/submission.csv, GIFs and frames for {n_seq} test sequences.")
    if summary["unequal_lengths"]:
        print(f"Warning: {summary['unequal_lengths']}; submission.csv was written anyway "
              "(--allow_unequal_lengths): its ids shift after that sequence.")
    if summary["scores_skipped"]:
        scored = summary["scored_sequences"]
        print(f"Scores {'skipped' if not scored else f'for {scored} of {n_seq} sequences only'}: "
              f"{summary['scores_skipped']} (the course hands out no test ground truth; submission.csv is "
              "scored on its leaderboard).")
    if summary["mean_psnr"] is not None:
        print(f"Test PSNR {summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.4f} (repeat-the-first-frame "
              f"baseline {summary['mean_baseline_psnr']:.2f} dB); per frame in {args.out}/scores.csv.")
        print(f"Over the person: pose-region PSNR {_db(summary['mean_psnr_pose'])}, person-box PSNR "
              f"{_db(summary['mean_psnr_box'])}.")
    multi = summary.get("multi_sample")
    if multi and multi["mean"]:
        print(f"{multi['samples']} samples per sequence (per frame in {args.out}/samples.csv):")
        for kind, label in (("mean_of_n", "mean of N"), ("best_of_n", "best of N (by SSIM)"),
                            ("deterministic", "deterministic (prior mean)"), ("posterior", "posterior bound")):
            m = multi["mean"][kind]
            print(f"  {label:<28} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}  "
                  f"pose {_db(m['psnr_pose'])}  box {_db(m['psnr_box'])}")
    elif multi:
        print(f"{multi['samples']} samples per sequence drawn: {args.out}/samples_seq*.gif (not scored).")


def _data_demo(args: argparse.Namespace) -> None:
    from posevae.data.demo.dataset import render_demo_dataset

    root = render_demo_dataset(args.out, seed=args.seed, n_train=args.n_train, height=args.height,
                               width=args.width, progress=not args.quiet)
    print(f"Wrote the demo dataset (lab layout) to {root}.")


def _demo(args: argparse.Namespace) -> None:
    from posevae.jobs.demo import run_demo

    overrides = {"num_epoch": args.epochs} if args.epochs else {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    run_demo(out=args.out, data=args.data, device=args.device, progress=not args.quiet, prior=args.prior,
             **overrides)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posevae", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on a dataset in the lab layout",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder exactly where it stopped")
    p.add_argument("--preset", choices=sorted(MODEL_PRESETS), default="lab",
                   help="model variant: lab (the course model), fast (4x downsampled latent), sharp (fast + "
                        "full-resolution skips of frame and pose + warping), tiny (tests), template (the course "
                        "template's model exactly)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_options(p, ["model", "data", "train", "sample"])
    p.set_defaults(func=_train)

    p = sub.add_parser("test", help="generate the test sequences from a checkpoint; write frames, GIFs, CSV")
    p.add_argument("--ckpt", "--ckpt_path", required=True,
                   help="checkpoint (.safetensors), run folder, or a course-template .ckpt")
    p.add_argument("--DR", required=True, help="dataset root in the lab layout")
    p.add_argument("--out", default="test_out", help="output folder (default: test_out)")
    p.add_argument("--noise_scale", "--noise-scale", type=float, default=None,
                   help="latent noise scale (default: the checkpoint's; 1.0 for a course-template .ckpt)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--z_mode", "--z-mode", choices=["sample", "mean"], default="sample",
                   help="sample z from the prior, or use its mean (deterministic)")
    p.add_argument("--num_frames", "--num-frames", type=int, default=None,
                   help="generate only the first N frames of each sequence (default: all its poses)")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="also draw N samples per sequence and score mean-of-N, best-of-N (by SSIM), the "
                        "deterministic rollout and the posterior bound (samples.csv) where there is ground truth")
    p.add_argument("--allow_unequal_lengths", "--allow-unequal-lengths", action="store_true",
                   help="write submission.csv even when the test sequences differ in length (its ids then "
                        "shift after the odd sequence; the course expects 630 frames each)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_test)

    p = sub.add_parser("demo", help="the main job: render the demo data, train a fast model, test, report")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--data", default="data/demo", help="demo dataset folder, rendered if missing")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the demo's budget, 6 epochs, ~10-13 min)")
    p.add_argument("--prior", choices=["fixed", "learned"], default="fixed",
                   help="latent prior: N(0, I) as in the lab, or learned from the previous frame and pose")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed (default: the demo's, 1, which the README's numbers come from)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demo)

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("demo", help="render the demo dataset (real motion capture, lab layout)")
    q.add_argument("--out", required=True, help="folder to write")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--n_train", "--n-train", type=int, default=12000, help="training frames")
    q.add_argument("--height", type=int, default=64)
    q.add_argument("--width", type=int, default=128)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_data_demo)

    from posevae.cli.convert import add_convert_command
    from posevae.cli.report import add_report_commands
    from posevae.cli.transfer import add_data_poses_command, add_transfer_command
    from posevae.cli.video import add_data_from_video_command

    add_data_poses_command(data_sub)
    add_data_from_video_command(data_sub)
    add_transfer_command(sub)
    add_convert_command(sub)

    add_report_commands(sub)
    return parser


def _version() -> str:
    from posevae import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"posevae: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
