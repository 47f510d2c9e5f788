"""The config dataclasses as command-line options, and the options back as a :class:`RunConfig`.

Options are generated from the config dataclasses, so each is defined once; the lab's flag names
(``--DR``, ``--save_root``, ``--kl_anneal_type``, ``--F_dim`` ...) are the option names, and each also has a
dashed spelling (``--kl-anneal-type``). Only options the user typed override the preset and the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
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

SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
                             "sample": SampleConfig}

# old option names, still accepted: {field: (old name, ...)}
ALIASES: dict[str, tuple[str, ...]] = {"prev_frame_skip": ("frame_skip",)}

HELP = {
    "DR": "dataset root in the lab layout (LAB4_Dataset)",
    "save_root": "run folder (metrics.csv, checkpoints/, tb/)",
    "downsample": "latent = frame / downsample (1 = the lab's model)",
    "prev_frame_skip": "skip connection: the previous frame's pixels join the generator's last stage (also "
                       "--frame_skip)",
    "skips": "U-Net skips: light encoders of the previous frame and next pose feed the generator at every "
             "scale",
    "skip_width": "channels of the skip encoders at full resolution (doubled at each halving)",
    "warp": "blend the output with the previous frame warped by a predicted full-resolution flow",
    "gdl_weight": "weight of the gradient-difference (edge) loss beside the MSE (0 = off, the lab's loss)",
    "person_weight": "weight of the MSE over the pose region of each frame's label beside the whole-frame "
                     "MSE (0 = off, the lab's loss)",
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
    "step": "a clip's T-1 model steps as one batch (one forward and backward; faster, above all on GPUs) "
            "or one after the other (the lab's order): the same loss and gradients; auto batches except on a "
            "CPU without teacher forcing",
    "kl_norm": "normalise the KL by every latent element (default) or by the batch size (lab template)",
    "max_bad_steps": "stop after this many non-finite losses in a row",
    "device": "auto (CUDA when present), cpu, cuda, cuda:N",
    "precision": "auto = bf16 autocast on CPUs with AMX or AVX-512 BF16, fp32 (TF32 convolutions) on GPUs "
                 "and elsewhere: what measured fastest",
    "noise_scale": "test-time latent noise: z ~ N(0, s^2 I), or N(mu_p, (s sigma_p)^2) with the learned "
                   "prior",
    "prior": "N(0, I) as in the lab (fixed), or p(z | previous frame, pose) learned as in SVG-LP",
    "variant": "posevae (the lab model, fixed) or template (the course template's model exactly, quirks "
               "kept)",
    "log_wandb": "also log to Weights & Biases (needs `pip install wandb`)",
    "compile": "torch.compile the model for training (pays off on GPUs; slower than eager on the CPUs "
               "measured)",
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
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)][0]
        return {"type": inner}
    return {"type": hint}


def add_config_options(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    for section in sections:
        cls = SECTIONS[section]
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(f"{section} options")
        for f in dataclasses.fields(cls):
            flags = [spelling for name in (f.name, *ALIASES.get(f.name, ()))
                     for spelling in dict.fromkeys((f"--{name}", f"--{name.replace('_', '-')}"))]
            default = f.default
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
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

