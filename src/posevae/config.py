"""Typed configuration: one dataclass per concern, validated once, passed down explicitly.

Field names follow the course lab's flags (``F_dim``, ``tfr_sde``, ``kl_anneal_type`` ...) so users find
what they know; the CLI is the only place that knows argparse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from posevae.errors import UserError
from posevae.schedules import KL_ANNEAL_TYPES, KLAnnealType, fitted_kl_cycles, trains_kl

# How a training step runs the T - 1 model steps of a clip: one after the other (the lab's order, the default:
# at the lab's recipe the batched step validated lower in both short runs, docs/quality.md), or as one batch
# with the same loss and gradients (BatchNorm per time step); "auto" batches except on a CPU without teacher
# forcing (posevae.training.step.step_for); the demo's recipe trains with "auto"
TrainStep = Literal["auto", "batched", "sequential"]
SkeletonName = Literal["demo", "openpose"]  # how pose labels are drawn (posevae.data.skeleton)
SKELETON_NAMES: tuple[SkeletonName, ...] = get_args(SkeletonName)
KLNorm = Literal["elements", "batch"]  # the KL normalised by every latent element, or by the batch size
Prior = Literal["fixed", "learned"]  # N(0, I) (the lab) or p(z | previous frame, pose) (SVG-LP)
Variant = Literal["posevae", "template"]  # "template": the course template's model exactly
# The names of each Literal, derived from it (option choices, checks and messages use these, never a copy)
PRIORS: tuple[Prior, ...] = get_args(Prior)
VARIANTS: tuple[Variant, ...] = get_args(Variant)
CYCLICAL_TYPES: tuple[KLAnnealType, ...] = ("Cyclical", "FuCyclical")  # restart at beta = 0 every cycle
# Derived seeds are a * SEED_STRIDE + b (an epoch of a run, a sample of a test sequence): a prime above any b
# used, so two (a, b) pairs never share a seed.
SEED_STRIDE = 1_000_003
# Test-time latent noise: z ~ N(0, s^2 I) (the strong report's 0.5). The one default of SampleConfig,
# PoseVAE.forward, rollout() and generate(); training's posterior path does not use it.
DEFAULT_NOISE_SCALE = 0.5


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the conditional VAE (defaults: the course lab's).

    ``downsample`` is the spatial factor between the frame and the latent: 1 keeps every layer at full
    resolution (the lab's model); 2 or 4 make the encoders downsample and the generator upsample back,
    which cuts the FLOPs per frame by about ``downsample**2``.

    ``variant`` "template" is the course template's model exactly (``nn.LeakyReLU(True)``, no sigmoid, no
    clamp, unbounded logvar; its parameter names map onto ours): the model of a converted template ``.ckpt``
    (``posevae convert``), see :mod:`posevae.model.template`. "posevae" (the default) is the lab model with
    those fixed. The template variant has no fast-preset options (downsample 1, no previous-frame skip, fixed
    prior).

    ``skips`` (the "sharp" preset, :mod:`posevae.model.unet_parts`) brings the previous frame and the next
    pose back at every resolution up to the full one; ``warp`` (off in every preset: it measured worse,
    docs/quality.md) lets the output copy the previous frame along a predicted flow.
    """

    frame_H: int = 32
    frame_W: int = 64
    F_dim: int = 128  # frame-encoder output channels
    L_dim: int = 32  # pose-encoder output channels
    N_dim: int = 12  # latent channels
    D_out_dim: int = 192  # decoder-fusion output channels
    downsample: int = 1  # 1 = the lab's full-resolution model; 2, 4, 8 = "fast" presets
    # a skip connection that carries the previous frame's pixels to the generator's last, full-resolution
    # stage (it skips no frames); "frame_skip" before, still read from old configs and as --frame_skip
    prev_frame_skip: bool = False
    prior: Prior = "fixed"  # N(0, I) (the lab) or p(z | previous frame, pose) (SVG-LP)
    variant: Variant = "posevae"  # "template": the course template's model exactly
    # the "sharp" preset (posevae.model.unet_parts); the defaults build the models of before
    skips: bool = False  # U-Net skips: previous frame and next pose reach the generator at every scale
    skip_width: int = 16  # skip-encoder channels at full resolution, doubled at each halving
    warp: bool = False  # full-resolution flow + blend mask that warps the previous frame into the output

    def __post_init__(self) -> None:
        for name in ("frame_H", "frame_W", "F_dim", "L_dim", "N_dim", "D_out_dim"):
            _require(getattr(self, name) > 0, f"--{name} must be a positive integer, got "
                                              f"{getattr(self, name)}.")
        _require(self.prior in PRIORS, f"--prior must be {' or '.join(PRIORS)}, got {self.prior!r}.")
        _require(self.downsample in (1, 2, 4, 8),
                 f"--downsample must be 1, 2, 4 or 8, got {self.downsample}.")
        _require(self.variant in VARIANTS,
                 f"--variant must be {' or '.join(VARIANTS)}, got {self.variant!r}.")
        plain = (self.downsample == 1 and not (self.prev_frame_skip or self.skips or self.warp)
                 and self.prior == "fixed")
        _require(self.variant == "posevae" or plain,
                 "--variant template is the course template's model: it has no --downsample, "
                 "--prev_frame_skip, --skips, --warp or --prior learned; drop those options (or use --preset "
                 "lab or fast).")
        _require(self.skip_width > 0, f"--skip_width must be a positive integer, got {self.skip_width}.")
        _require(not (self.skips and self.prev_frame_skip),
                 "--skips already feeds the previous frame's pixels to the generator's full-resolution "
                 "stage: drop --frame_skip / --prev_frame_skip (pass --no-prev_frame_skip after a preset "
                 "that sets it).")
        _require(
            self.frame_H % self.downsample == 0 and self.frame_W % self.downsample == 0,
            f"Frame size {self.frame_H}x{self.frame_W} is not divisible by the model's downsample factor "
            f"{self.downsample}: choose --frame_H/--frame_W that are multiples of {self.downsample}, "
            "or use --preset lab (downsample 1).",
        )


# Named model variants (CLI `--preset`). "lab" is the course model; "fast" downsamples 4x; "sharp" adds
# U-Net skips of the previous frame and the next pose at every scale to fast (docs/quality.md); "template" is
# the course template's model exactly (its quirks kept), to read and continue its checkpoints.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "lab": {},
    "template": {"variant": "template"},
    "fast": {"downsample": 4, "prev_frame_skip": True},
    "tiny": {"F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 24, "downsample": 2, "prev_frame_skip": True},
    # fast's latent and fusion at /4, plus U-Net skips of frame and pose (--warp adds the flow warp, which
    # measured worse: docs/quality.md)
    "sharp": {"downsample": 4, "skips": True},
}


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is cut into training clips.

    Where this departs from the course template (README, "What differs from the lab's code"):

    * ``fast_train`` trains the first ``fast_train_epoch`` (5) epochs on ``partial * fast_partial`` of the
      frames; the template replaces ``partial`` by ``fast_partial`` and keeps it for 7 epochs.
    * The clips of every epoch are shuffled (by the epoch's seed); the template's loader does not shuffle.
    """

    DR: str = ""  # dataset root (the lab's LAB4_Dataset layout)
    train_vi_len: int = 16  # frames per training clip
    stride: int | None = None  # step between clip starts; None = train_vi_len (non-overlapping, as the lab)
    val_vi_len: int = 630  # frames of the validation video used
    partial: float = 1.0  # fraction of the training frames used
    fast_train: bool = False  # use fast_partial of the data for the first fast_train_epoch epochs
    fast_partial: float = 0.4
    fast_train_epoch: int = 5
    cache_dir: str | None = None  # where decoded frames are cached; None = DR/.posevae_cache
    num_workers: int = 0
    # how DR's pose labels are drawn (posevae.data.skeleton: "demo" or "openpose"), as the dataset records it
    # when training starts (posevae.training.setup.data_skeleton); None: unknown (no record). Not an option.
    skeleton: SkeletonName | None = None

    def __post_init__(self) -> None:
        _require(self.train_vi_len >= 2, f"--train_vi_len must be >= 2, got {self.train_vi_len}.")
        _require(self.stride is None or self.stride >= 1, f"--stride must be >= 1, got {self.stride}.")
        _require(self.val_vi_len >= 2, f"--val_vi_len must be >= 2, got {self.val_vi_len}.")
        _require(0 < self.partial <= 1, f"--partial must be in (0, 1], got {self.partial}.")
        _require(0 < self.fast_partial <= 1, f"--fast_partial must be in (0, 1], got {self.fast_partial}.")
        _require(self.fast_train_epoch >= 0, f"--fast_train_epoch must be >= 0, got {self.fast_train_epoch}.")
        _require(self.skeleton is None or self.skeleton in SKELETON_NAMES,
                 f"data.skeleton must be one of {', '.join(SKELETON_NAMES)} or None (unknown), got "
                 f"{self.skeleton!r}.")

    @property
    def clip_stride(self) -> int:
        return self.stride or self.train_vi_len


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedules and bookkeeping of one training run.

    ``num_epoch`` epochs are trained (0 .. num_epoch - 1); the course template's loop runs num_epoch + 1.
    ``precision`` applies to the training steps; validation and ``posevae test`` always run in fp32.
    """

    save_root: str = "runs/run"
    batch_size: int = 2
    lr: float = 1e-3
    num_epoch: int = 70
    per_save: int = 3
    optim: Literal["Adam", "AdamW"] = "Adam"
    lr_schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: tuple[int, ...] = (2, 5)  # for the lab's MultiStepLR
    gamma: float = 0.1
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    # teacher forcing (the lab's tfr / tfr_sde / tfr_d_step)
    tfr: float = 1.0
    tfr_sde: int = 10
    tfr_d_step: float = 0.1
    tf_per: Literal["epoch", "batch"] = "epoch"  # draw teacher forcing once per epoch (lab) or per batch
    step: TrainStep = "sequential"  # a clip's model steps one after the other (the lab's), or as one batch
    # KL annealing
    kl_anneal_type: KLAnnealType = "Cyclical"
    kl_anneal_cycle: int = 10
    kl_anneal_ratio: float = 0.5
    kl_norm: KLNorm = "elements"
    # weight of the gradient-difference (edge) loss beside the MSE; 0 = the lab's loss
    gdl_weight: float = 0.0
    # weight of the MSE over the pose region of each frame's label beside the whole-frame MSE; 0 = the lab's
    person_weight: float = 0.0
    max_bad_steps: int = 20  # stop after this many non-finite losses in a row
    seed: int = 1
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True
    compile: bool = False  # torch.compile the model for training (for GPUs; on CPUs it measured slower)
    val_every: int = 1
    log_wandb: bool = False

    def _kl_fix(self) -> str:
        fits = fitted_kl_cycles(self.kl_anneal_type, self.num_epoch, self.kl_anneal_cycle,
                                self.kl_anneal_ratio)
        if fits is not None:
            return f"use --kl_anneal_cycle <= {fits} or another --kl_anneal_type"
        return (f"no number of cycles does in {self.num_epoch} epoch(s): use --num_epoch 2 or more, or "
                "--kl_anneal_type None (beta = 1 from the start)")

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"--batch_size must be >= 1, got {self.batch_size}.")
        _require(self.lr > 0, f"--lr must be positive, got {self.lr}.")
        _require(self.num_epoch >= 1, f"--num_epoch must be >= 1, got {self.num_epoch}.")
        _require(self.per_save >= 1, f"--per_save must be >= 1, got {self.per_save}.")
        _require(0 <= self.tfr <= 1, f"--tfr must be in [0, 1], got {self.tfr}.")
        _require(self.tfr_sde >= 0, f"--tfr_sde must be >= 0, got {self.tfr_sde}.")
        _require(0 <= self.tfr_d_step <= 1, f"--tfr_d_step must be in [0, 1], got {self.tfr_d_step}.")
        _require(self.kl_anneal_type in KL_ANNEAL_TYPES,
                 f"--kl_anneal_type must be one of {', '.join(KL_ANNEAL_TYPES)}, "
                 f"got {self.kl_anneal_type!r}.")
        _require(self.kl_anneal_cycle >= 1, f"--kl_anneal_cycle must be >= 1, got {self.kl_anneal_cycle}.")
        _require(0 < self.kl_anneal_ratio <= 1, "--kl_anneal_ratio must be in (0, 1], got "
                                                f"{self.kl_anneal_ratio}.")
        _require(self.kl_anneal_type not in CYCLICAL_TYPES
                 or trains_kl(self.kl_anneal_type, self.num_epoch, self.kl_anneal_cycle,
                              self.kl_anneal_ratio),
                 f"{self.kl_anneal_type} KL annealing with {self.kl_anneal_cycle} cycles over "
                 f"{self.num_epoch} epochs gives beta = 0 in every epoch (the KL would never be trained): "
                 f"{self._kl_fix()}.")
        _require(self.grad_clip >= 0, f"--grad_clip must be >= 0, got {self.grad_clip}.")
        _require(self.gdl_weight >= 0, f"--gdl_weight must be >= 0, got {self.gdl_weight}.")
        _require(self.person_weight >= 0, f"--person_weight must be >= 0, got {self.person_weight}.")
        _require(self.max_bad_steps >= 1, f"--max_bad_steps must be >= 1, got {self.max_bad_steps}.")
        _require(self.val_every >= 1, f"--val_every must be >= 1, got {self.val_every}.")


@dataclass(frozen=True)
class SampleConfig:
    """Test-time generation."""

    # z ~ N(0, noise_scale^2 I) at test time (the strong report's 0.5)
    noise_scale: float = DEFAULT_NOISE_SCALE
    sample_seed: int = 1  # seed of the validation rollout's latent samples

    def __post_init__(self) -> None:
        _require(self.noise_scale >= 0, f"--noise_scale must be >= 0, got {self.noise_scale}.")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; stored in every checkpoint as plain JSON."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(
            model=_from_dict(ModelConfig, d.get("model", {})),
            data=_from_dict(DataConfig, d.get("data", {})),
            train=_from_dict(TrainConfig, d.get("train", {})),
            sample=_from_dict(SampleConfig, d.get("sample", {})),
        )


# Fields renamed since configs were first stored (in checkpoints and config.json): {class: {old: new}}
RENAMED_FIELDS: dict[type, dict[str, str]] = {ModelConfig: {"frame_skip": "prev_frame_skip"}}
# Fields added since, with what a stored config without them ran (a resumed run continues as it trained)
ADDED_FIELDS: dict[type, dict[str, Any]] = {TrainConfig: {"step": "sequential"},
                                            DataConfig: {"skeleton": None}}  # None: unknown


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    values = dict(d)
    for old, new in RENAMED_FIELDS.get(cls, {}).items():  # a config stored before the rename
        if old in values and new not in values:
            values[new] = values.pop(old)
    for name, before in ADDED_FIELDS.get(cls, {}).items():
        values.setdefault(name, before)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    _require(not unknown, f"Unknown {cls.__name__} fields {unknown}: this config was written by another "
                          "posevae version or edited by hand; remove those keys.")
    for f in dataclasses.fields(cls):  # JSON turns tuples into lists
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def fit_kl_cycles_to_run(train: dict[str, Any]) -> str | None:
    """Fit ``kl_anneal_cycle`` of a training-options dict (in place) to a run too short for it.

    For a cyclical schedule whose cycles leave beta = 0 in every epoch (10 cycles over 2 epochs), set the
    most cycles, at most num_epoch / 2, that train the KL. Returns the line to tell the user, or None when
    nothing changed (the schedule trains the KL, or no number of cycles would: the config's check then
    explains). Call it only when the user did not choose the number of cycles.
    """
    kind, epochs, cycles, ratio = (train[k] for k in ("kl_anneal_type", "num_epoch", "kl_anneal_cycle",
                                                      "kl_anneal_ratio"))
    if kind not in CYCLICAL_TYPES or trains_kl(kind, epochs, cycles, ratio):
        return None
    fitted = fitted_kl_cycles(kind, epochs, cycles, ratio)
    if fitted is None:
        return None
    train["kl_anneal_cycle"] = fitted
    return (f"{kind} KL annealing: {fitted} cycle{'s' if fitted > 1 else ''} over {epochs} epochs (the "
            f"default {cycles} would leave beta = 0 in every epoch); set --kl_anneal_cycle to choose.")


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two nested config dicts: ['model.F_dim: 128 != 64', ...]."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, name + ".")
        elif va != vb:
            out.append(f"{name}: {va!r} != {vb!r}")
    return out
