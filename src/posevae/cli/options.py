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

# config fields that are no option: recorded, not chosen ({section}.{field})
NOT_OPTIONS = {"data.skeleton"}  # the training data's drawing, read from the dataset when a run starts

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
    "warp": "blend the output with the previous frame warped by a predicted full-resolution flow (in no "
            "preset: it measured worse, docs/quality.md)",
    "gdl_weight": "weight of the gradient-difference (edge) loss beside the MSE (0 = off, the lab's loss)",
    "person_weight": "weight of the MSE over the pose region of each frame's label beside the whole-frame "
                     "MSE (0 = off, the lab's loss)",
    "train_vi_len": "frames per training clip",
    "stride": "frames between clip starts (None: train_vi_len, non-overlapping)",
    "val_vi_len": "frames of the validation video",
    "partial": "fraction of the training frames used",
    "fast_train": "train the first --fast_train_epoch epochs on --partial x --fast_partial of the training "
                  "frames",
    "cache_dir": "folder for decoded frames (None: DR/.posevae_cache)",
    "num_workers": "DataLoader worker processes",
    "per_save": "also save checkpoints/epoch_N every this many epochs",
    "lr_schedule": "cosine annealing, the lab's multistep (--milestones, --gamma), or constant",
    "milestones": "epochs at which --lr_schedule multistep multiplies the learning rate by --gamma",
    "gamma": "the factor of --lr_schedule multistep at each milestone",
    "grad_clip": "max gradient norm (0 = off)",
    "tfr": "teacher-forcing ratio at the start",
    "tfr_sde": "epoch at which teacher forcing starts to decay",
    "tfr_d_step": "teacher-forcing decay per epoch",
    "tf_per": "draw teacher forcing once per epoch (lab) or per batch",
    "step": "a clip's T-1 model steps one after the other (the lab's order) or as one batch (one forward "
            "and backward; faster, above all on GPUs): the same loss and gradients; auto batches except on a "
            "CPU without teacher forcing",
    "kl_anneal_type": "the KL weight beta over the epochs (posevae.schedules): Cyclical, Monotonic, None "
                      "(beta = 1 throughout) or FuCyclical (Fu et al.'s reference code)",
    "kl_anneal_cycle": "cycles over the run (Monotonic: its one ramp lasts num_epoch / cycles epochs); a new "
                       "run that leaves it unset gets fewer when the run is too short for them",
    "kl_anneal_ratio": "fraction of each cycle over which beta rises from 0 to 1 (Cyclical, FuCyclical)",
    "kl_norm": "normalise the KL by every latent element or by the batch size (lab template)",
    "max_bad_steps": "stop after this many non-finite losses in a row",
    "device": "auto (CUDA when present), cpu, cuda, cuda:N",
    "precision": "auto = bf16 autocast on CPUs with AMX or AVX-512 BF16, fp32 (TF32 convolutions) on GPUs "
                 "and elsewhere: what measured fastest",
    "noise_scale": "test-time latent noise: z ~ N(0, s^2 I), or N(mu_p, (s sigma_p)^2) with the learned "
                   "prior",
    "sample_seed": "seed of the validation rollout's latents (and of posevae compare's test rollouts)",
    "val_every": "not used: every epoch is validated (the validation PSNR picks best.safetensors)",
    "prior": "N(0, I) as in the lab (fixed), or p(z | previous frame, pose) learned as in SVG-LP",
    "variant": "posevae (the lab model, fixed) or template (the course template's model exactly, quirks "
               "kept)",
    "log_wandb": "also log to Weights & Biases (needs `pip install wandb`)",
    "compile": "torch.compile the model for training (pays off on GPUs; slower than eager on the CPUs "
               "measured)",
}


# What each preset is for; the options it sets are read from MODEL_PRESETS (preset_help)
PRESET_PURPOSE = {
    "lab": "the course model",
    "template": "the course template's model exactly, quirks kept",
    "fast": "fewer FLOPs per frame",
    "tiny": "for tests",
    "sharp": "U-Net skips of the previous frame and the next pose at every scale",
}


def _as_option(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name} {value}"


def preset_help() -> str:
    """The help of ``--preset``: each preset with what it is for and the model options it sets, exactly as
    :data:`posevae.config.MODEL_PRESETS` has them."""
    described = []
    for name, settings in MODEL_PRESETS.items():
        sets = " ".join(_as_option(k, v) for k, v in settings.items()) or "the defaults"
        purpose = PRESET_PURPOSE.get(name)
        described.append(f"{name} ({purpose}: {sets})" if purpose else f"{name} ({sets})")
    return ("model variant, with the model options it sets: " + ", ".join(described)
            + "; model options typed as well override it")


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
            if f"{section}.{f.name}" in NOT_OPTIONS:
                continue
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

