"""Before the first epoch: where the run starts (new, or resumed from its last checkpoint), its data, and the
model with its optimizer and learning-rate schedule."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from posevae.config import SKELETON_NAMES, DataConfig, RunConfig, SkeletonName, config_diff
from posevae.data.lab import ClipDataset, Video, load_val_video, load_video
from posevae.errors import UserError
from posevae.model.checkpoint import Checkpoint, load_checkpoint
from posevae.model.vae import PoseVAE
from posevae.run_folder import RunFolder
from posevae.training.step import Optimisation, batched_step_frames

# Keys of the config that may differ when resuming (they do not change the numbers; a run folder may move;
# data.skeleton is a record read from the data when training starts, absent from runs started before it).
RESUMABLE_CHANGES = {"train.device", "data.num_workers", "data.cache_dir", "data.DR", "train.save_root",
                     "data.skeleton"}


def config_changes(stored: RunConfig, requested: RunConfig) -> list[str]:
    """How ``requested`` differs from the ``stored`` config of a run in what a resumed or reused run may not
    change (everything but RESUMABLE_CHANGES): ['train.lr: 0.001 != 0.0005', ...]; empty when it may."""
    return [line for line in config_diff(stored.to_dict(), requested.to_dict())
            if line.split(":")[0] not in RESUMABLE_CHANGES]


@dataclass
class RunStart:
    """Where training starts: epoch 0 of a new run, or the epoch after the last checkpoint of a resumed
    one."""

    epoch: int = 0
    best_psnr: float = -math.inf
    rows: list[dict[str, Any]] = field(default_factory=list)  # the metrics.csv rows of the epochs kept
    checkpoint: Checkpoint | None = None  # the checkpoint to continue from


def start_or_resume(run: RunFolder, cfg: RunConfig, resume: bool) -> RunStart:
    """A new run (refused when ``run`` already holds one), or the resumed one (refused when its stored config
    differs in anything but RESUMABLE_CHANGES, or when it has finished)."""
    if not resume:
        if run.last.exists():
            raise UserError(f"{run.root} already holds a run ({run.last}): resume it with `posevae train "
                            f"--resume {run.root}`, or choose another --save_root.")
        return RunStart()
    if not run.last.exists():
        raise UserError(f"Nothing to resume in {run.root}: {run.last} does not exist. Start the run without "
                        "--resume, or pass the folder of an earlier run.")
    ckpt = load_checkpoint(run.last)
    diff = config_changes(ckpt.config, cfg)
    if diff:
        raise UserError(f"The run in {run.root} was started with another config ({'; '.join(diff)}; "
                        "stored != requested): resume with the stored options (just `--resume RUN`) or "
                        "start a new run in another --save_root.")
    start_epoch = ckpt.train_state["epoch"] + 1
    if start_epoch >= cfg.train.num_epoch:
        raise UserError(f"The run in {run.root} already finished its {cfg.train.num_epoch} epochs; nothing "
                        f"to resume. Its best checkpoint is {run.best}.")
    rows = [r for r in run.read_metrics() if int(r["epoch"]) < start_epoch]
    return RunStart(start_epoch, ckpt.train_state.get("best_psnr", -math.inf), rows, ckpt)


def data_skeleton(root: str | Path) -> SkeletonName | None:
    """How the pose labels of the dataset at ``root`` are drawn ("demo" or "openpose"), as its keypoints.json
    (``posevae data demo`` and ``from-video``) or from_video.json records it; None when neither does (the
    course's dataset, or one written before the record)."""
    for name in ("keypoints.json", "from_video.json"):
        try:
            record = json.loads((Path(root) / name).read_text())
        except (OSError, ValueError):
            continue
        value = record.get("skeleton") if isinstance(record, dict) else None
        for name in SKELETON_NAMES:
            if value == name:
                return name
    return None


def record_data_skeleton(cfg: RunConfig, checkpoint: Checkpoint | None = None) -> RunConfig:
    """``cfg`` with ``data.skeleton`` read from its dataset; when the dataset records none, ``cfg``'s own,
    else that of the ``checkpoint`` a resumed run continues from (None: unknown)."""
    skeleton = (data_skeleton(cfg.data.DR) if cfg.data.DR else None) or cfg.data.skeleton
    if skeleton is None and checkpoint is not None:
        skeleton = checkpoint.config.data.skeleton
    if skeleton == cfg.data.skeleton:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, skeleton=skeleton))


@dataclass
class TrainingData:
    """The training clips (all, and the --fast_train share), and the validation video."""

    clips: ClipDataset
    fast_clips: ClipDataset | None  # --fast_train: the clips of the first fast_train_epoch epochs
    val_video: Video

    def clips_of_epoch(self, epoch: int, data: DataConfig) -> ClipDataset:
        if self.fast_clips is not None and epoch < data.fast_train_epoch:
            return self.fast_clips
        return self.clips


def load_training_data(cfg: RunConfig, world: int, progress: bool) -> TrainingData:
    """The training video cut into clips and the validation video; UserError when a batch needs more clips
    than there are (per process under torchrun)."""
    d, t, m = cfg.data, cfg.train, cfg.model
    train_video = load_video(d.DR, "train", m.frame_H, m.frame_W, d.cache_dir, progress=progress)
    val_video = load_val_video(d.DR, m.frame_H, m.frame_W, d.val_vi_len, d.cache_dir, progress=progress)
    clips = ClipDataset(train_video, d.train_vi_len, d.stride, d.partial)
    fast_clips = (ClipDataset(train_video, d.train_vi_len, d.stride, d.partial * d.fast_partial)
                  if d.fast_train else None)
    for dataset, what in ((clips, ""), (fast_clips, " with --fast_partial")):
        if dataset is not None and t.batch_size > len(dataset) // world:
            per = f" ({world} processes share them; --batch_size is per process)" if world > 1 else ""
            raise UserError(f"--batch_size {t.batch_size} is larger than the {len(dataset)} training clips "
                            f"of {d.train_vi_len} frames in {d.DR}{what}{per}: lower --batch_size or "
                            "--train_vi_len.")
    return TrainingData(clips, fast_clips, val_video)


def build_optimizer(
    model: PoseVAE, cfg: RunConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    t = cfg.train
    opt_cls = torch.optim.AdamW if t.optim == "AdamW" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=t.lr)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if t.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t.num_epoch)
    elif t.lr_schedule == "multistep":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(t.milestones),
                                                         gamma=t.gamma)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return optimizer, scheduler


def build_optimisation(cfg: RunConfig, device: torch.device, checkpoint: Checkpoint | None,
                       world: int) -> Optimisation:
    """The model (seeded with ``train.seed``), its optimizer and schedule, loaded from ``checkpoint`` when
    resuming; the step model is compiled with --compile and wrapped in DistributedDataParallel under
    torchrun."""
    t = cfg.train
    torch.manual_seed(t.seed)
    model = PoseVAE(cfg.model).to(device)
    if t.channels_last:
        # Module.to takes memory_format (documented); torch's typed overloads of it leave it out
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer, scheduler = build_optimizer(model, cfg)
    if checkpoint is not None:  # every rank loads the same checkpoint
        model.load_state_dict(checkpoint.model_state)
        if checkpoint.optimizer_state is None:
            raise UserError("The checkpoint to resume from has no optimizer state (it was not written by "
                            "`posevae train`): start a new run instead of resuming.")
        optimizer.load_state_dict(checkpoint.optimizer_state)
        scheduler.load_state_dict(checkpoint.train_state["scheduler"])
    step_model: torch.nn.Module = torch.compile(model) if t.compile else model  # type: ignore[assignment]
    if world > 1:
        step_model = DistributedDataParallel(step_model,
                                             device_ids=[device] if device.type == "cuda" else None)
    return Optimisation(model, step_model, optimizer, scheduler, batched_step_frames(model, device))
