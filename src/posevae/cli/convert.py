"""The ``posevae convert`` subcommand (wired into :mod:`posevae.cli.main`).

    posevae convert epoch=70.ckpt --out model.safetensors

Reads a checkpoint trained with the course template (:mod:`posevae.model.template_ckpt`) and writes it as a
posevae checkpoint (safetensors, atomically), which ``posevae test`` and ``posevae transfer`` read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posevae.config import ModelConfig
from posevae.model.template import TEMPLATE_NOISE_SCALE
from posevae.model.template_ckpt import convert_template_ckpt


def _convert(args: argparse.Namespace) -> None:
    checkpoint = convert_template_ckpt(args.ckpt, args.out)
    m, s = checkpoint.config.model, checkpoint.config.sample
    print(f"Wrote {Path(args.out)}: the course template's model (variant template, {m.frame_H}x{m.frame_W}, "
          f"F_dim {m.F_dim}, L_dim {m.L_dim}, N_dim {m.N_dim}, D_out_dim {m.D_out_dim}, "
          f"noise_scale {s.noise_scale}) from {args.ckpt}.")


def add_convert_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert`` to the ``posevae`` subcommands."""
    p = subparsers.add_parser(
        "convert", help="convert a checkpoint trained with the course template (.ckpt) to posevae's format",
        description="Read a .ckpt saved by the course template's VAE_Model.save (tensors only, nothing "
                    "unpickled) and write a posevae .safetensors checkpoint of the template variant "
                    f"(F_dim, L_dim, N_dim, D_out_dim read from its shapes; {ModelConfig.frame_H}x"
                    f"{ModelConfig.frame_W} frames; test noise {TEMPLATE_NOISE_SCALE}).")
    p.add_argument("ckpt", metavar="CKPT", help="the template's checkpoint, e.g. epoch=70.ckpt")
    p.add_argument("--out", required=True, help="the posevae checkpoint to write (.safetensors)")
    p.set_defaults(func=_convert)
