"""The training loop, as the lab's pseudo-code: for each epoch, draw teacher forcing, train on every batch of
clips, step the learning-rate schedule, validate, save the checkpoints.

    for epoch in range(start, num_epoch):
        plan = plan_epoch(cfg, epoch)             # seed, teacher-forcing ratio and draw, KL weight beta
        totals = train_epoch(...)                 # every batch: forward, backward, optimizer (training.step)
        scheduler.step()
        finish_epoch(...)                         # validate (training.validation), log, save checkpoints

Reproducibility: every epoch reseeds torch from (seed, epoch), and the data order and the teacher-forcing
draws come from that seed, so a run resumed from the checkpoint of epoch E continues exactly as the
uninterrupted run would.

Under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel, each rank trains on its
share of the clips, and rank 0 alone validates and writes the run folder; see posevae.training.distributed.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from posevae.config import SEED_STRIDE, RunConfig
from posevae.data.lab import ClipDataset, Video
from posevae.device import autocast_for, training_precision
from posevae.errors import UserError
from posevae.files import atomic_write_text
from posevae.model.checkpoint import Checkpoint, save_checkpoint
from posevae.model.rollout import to_unit_float
from posevae.run_folder import RunFolder, ValFrames, per_frame_csv, write_val_frames
from posevae.schedules import kl_beta, teacher_forcing_ratio
from posevae.training import distributed
from posevae.training.clips import DeviceBatches, VideoOnDevice
from posevae.training.logs import EpochLog, print_epoch
from posevae.training.setup import (
    RunStart,
    TrainingData,
    build_optimisation,
    load_training_data,
    record_data_skeleton,
    start_or_resume,
)
from posevae.training.step import ClipStats, Optimisation, train_batch
from posevae.training.validation import evaluate_video


class TrainingDiverged(UserError):
    """Too many non-finite losses in a row; the last good checkpoint is intact."""


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch of a run seeded ``seed``."""
    return seed * SEED_STRIDE + epoch


@dataclass
class EpochPlan:
    """What the schedules say for one epoch, and the draws of teacher forcing."""

    epoch: int
    seed: int  # seeds torch, the clip order and the teacher-forcing draws of this epoch
    tfr: float  # teacher-forcing ratio
    beta: float  # KL weight
    draw: random.Random  # teacher forcing on or off: draw.random() < tfr
    teacher_forcing: bool  # the epoch's draw (the lab's); with --tf_per batch, redrawn every batch


def plan_epoch(cfg: RunConfig, epoch: int) -> EpochPlan:
    """Seed the epoch (torch: each rank its own noise) and read the schedules: tfr, beta, teacher forcing."""
    t = cfg.train
    seed = epoch_seed(t.seed, epoch)
    torch.manual_seed(seed + (distributed.rank() << 32))  # rank 0: seed; other ranks: their own noise
    draw = random.Random(seed)
    tfr = teacher_forcing_ratio(epoch, t.tfr, t.tfr_sde, t.tfr_d_step)
    beta = kl_beta(epoch, t.kl_anneal_type, t.num_epoch, t.kl_anneal_cycle, t.kl_anneal_ratio)
    return EpochPlan(epoch, seed, tfr, beta, draw, draw.random() < tfr)


def clip_loader(dataset: ClipDataset, cfg: RunConfig, plan: EpochPlan,
                on_device: VideoOnDevice | None = None) -> DataLoader | DeviceBatches:
    """The epoch's batches of clips (uint8), shuffled by the epoch's seed; under torchrun each rank its share.
    With ``on_device`` (training on a GPU) they are gathered there: the same batches, whose clip indices a
    DataLoader over the indices draws exactly as the one over the clips would (training.clips)."""
    t, d = cfg.train, cfg.data
    order: dict[str, Any]
    if distributed.world_size() > 1:  # --batch_size is per process
        sampler: DistributedSampler = DistributedSampler(dataset, shuffle=True, seed=plan.seed,
                                                         drop_last=True)
        sampler.set_epoch(plan.epoch)
        order = {"sampler": sampler}
    else:
        order = {"shuffle": True, "generator": torch.Generator().manual_seed(plan.seed)}
    if on_device is not None:
        # a range is a map-style dataset (__getitem__, __len__), though not typed as one
        clip_indices: Any = range(len(dataset))
        indices: DataLoader = DataLoader(clip_indices, batch_size=t.batch_size, drop_last=True, **order)
        return DeviceBatches(dataset, on_device, indices)
    return DataLoader(dataset, batch_size=t.batch_size, drop_last=True, num_workers=d.num_workers, **order)


@dataclass
class EpochTotals:
    """Sums over the trained (finite) batches of one epoch, and the count of skipped ones."""

    lr: float  # the learning rate the epoch trained with
    last_teacher_forcing: bool  # the last draw (the epoch's, or with --tf_per batch the last batch's)
    loss: float = 0.0
    mse: float = 0.0
    kl: float = 0.0
    trained: int = 0
    skipped: int = 0
    teacher_forced: int = 0

    def add(self, stats: ClipStats, teacher_forcing: bool) -> None:
        self.trained += 1
        self.teacher_forced += teacher_forcing
        self.loss += stats.loss_per_frame
        self.mse += stats.mse_per_frame
        self.kl += stats.kl_per_frame

    def row(self) -> dict[str, Any]:
        """The epoch's metrics.csv columns of training: means per trained batch, NaN when every batch of the
        epoch was skipped (there is no mean of nothing, and 0 would read as a perfect loss)."""
        n = self.trained or math.nan
        return {"loss": self.loss / n, "mse": self.mse / n, "kl": self.kl / n,
                "teacher_forcing": self.teacher_forced / n, "lr": self.lr, "skipped_steps": self.skipped}


class BadStepGuard:
    """Counts non-finite steps in a row, across epochs; too many stop the run with TrainingDiverged."""

    def __init__(self, run: RunFolder, cfg: RunConfig) -> None:
        self.run, self.cfg = run, cfg
        self.in_a_row = 0

    def good(self) -> None:
        self.in_a_row = 0

    def bad(self, epoch: int, beta: float) -> None:
        self.in_a_row += 1
        if self.in_a_row < self.cfg.train.max_bad_steps:
            return
        kept = (f"The last good checkpoint {self.run.last} is intact"
                if self.run.last.exists() or not distributed.is_main()
                else "No epoch finished, so no checkpoint was written")
        # measured (docs/quality.md): with beta = 0 the posterior's mean and log-variance grow within a few
        # steps, z reaches hundreds and the generator's gated (quadratic) layers overflow
        schedule = self.cfg.train.kl_anneal_type
        unheld = (f" Beta was 0 in this epoch ({schedule} KL annealing), so nothing held "
                  "the posterior: its samples can grow until the generator overflows; --kl_anneal_type None "
                  "(beta = 1 from the start) avoids epochs at beta = 0." if beta == 0 else "")
        raise TrainingDiverged(
            f"Training diverged: {self.in_a_row} non-finite losses in a row in epoch {epoch + 1}.{unheld} "
            f"{kept}; lower --lr (now {self.cfg.train.lr}) or --grad_clip, or check the data, then resume or "
            "restart.")


def train_epoch(opt: Optimisation, loader: DataLoader | DeviceBatches, plan: EpochPlan, cfg: RunConfig,
                device: torch.device, guard: BadStepGuard, autocast: Callable[[], AbstractContextManager],
                progress: bool) -> EpochTotals:
    """One pass over the epoch's batches: each trains the model unless its loss or gradient is not finite."""
    t = cfg.train
    totals = EpochTotals(lr=opt.lr, last_teacher_forcing=plan.teacher_forcing)
    bar = tqdm(loader, desc=f"epoch {plan.epoch + 1}/{t.num_epoch}", disable=not progress, leave=False,
               dynamic_ncols=True)
    opt.step_model.train()
    for frames_u8, poses_u8 in bar:
        if t.tf_per == "batch":
            totals.last_teacher_forcing = plan.draw.random() < plan.tfr
        teacher_forcing = totals.last_teacher_forcing
        stats = train_batch(opt, to_unit_float(frames_u8, device), to_unit_float(poses_u8, device),
                            beta=plan.beta, teacher_forcing=teacher_forcing, kl_norm=t.kl_norm,
                            grad_clip=t.grad_clip, gdl_weight=t.gdl_weight, device=device, autocast=autocast,
                            person_weight=t.person_weight, step=t.step)
        if stats is None:
            totals.skipped += 1
            guard.bad(plan.epoch, plan.beta)
            continue
        guard.good()
        totals.add(stats, teacher_forcing)
        distributed.write_weight_hash(opt.step_model, plan.epoch, totals.trained)
        bar.set_postfix(tf="on" if teacher_forcing else "off", tfr=f"{plan.tfr:.2f}", beta=f"{plan.beta:.3f}",
                        loss=f"{stats.loss_per_frame:.4g}", lr=f"{totals.lr:.2e}")
    bar.close()
    return totals


def save_checkpoints(run: RunFolder, cfg: RunConfig, opt: Optimisation, epoch: int, val: dict[str, Any],
                     best_psnr: float, is_best: bool, val_video: Video) -> None:
    """RUN/checkpoints: best.safetensors (and the per-frame CSV and val_best_frames.npz, the scored rollout
    of ``val_video``) when this epoch is the best, epoch_N every per_save epochs, and last."""
    state = Checkpoint(cfg, opt.model.state_dict(), {"epoch": epoch, "best_psnr": best_psnr,
                                                       "scheduler": opt.scheduler.state_dict(),
                                                       "val_psnr": val["val_psnr"]},
                       opt.optimizer.state_dict())
    if is_best:
        save_checkpoint(run.best, state)
        write_val_frames(run.val_frames, ValFrames(epoch, val["pred_frames"].cpu().numpy(),
                                                   val_video.frames.numpy(), val_video.labels.numpy()))
        atomic_write_text(run.per_frame, per_frame_csv(val["per_frame"]))
    if (epoch + 1) % cfg.train.per_save == 0:
        save_checkpoint(run.checkpoints / f"epoch_{epoch + 1}.safetensors", state)
    save_checkpoint(run.last, state)  # last, so a crash before it replays this epoch on resume


def finish_epoch(run: RunFolder, cfg: RunConfig, opt: Optimisation, data: TrainingData, plan: EpochPlan,
                 totals: EpochTotals, log: EpochLog, best_psnr: float, started: float, device: torch.device,
                 progress: bool) -> float:
    """Rank 0's end of an epoch: validate, log the row, save the checkpoints; returns the best val PSNR.

    Validation runs in fp32 whatever --precision says (that is for the training steps): it picks the best
    checkpoint, so it scores with the arithmetic of ``posevae test``, which generates in fp32.
    """
    row: dict[str, Any] = {"epoch": plan.epoch, **totals.row(), "beta": plan.beta, "tfr": plan.tfr}
    val = evaluate_video(opt.model, data.val_video, device=device, beta=plan.beta,
                         noise_scale=cfg.sample.noise_scale, seed=cfg.sample.sample_seed,
                         kl_norm=cfg.train.kl_norm)
    row.update({k: v for k, v in val.items() if k not in ("per_frame", "pred_frames")})
    row["seconds"] = time.perf_counter() - started
    log.write(row)
    is_best = val["val_psnr"] > best_psnr
    best_psnr = max(best_psnr, val["val_psnr"])
    save_checkpoints(run, cfg, opt, plan.epoch, val, best_psnr, is_best, data.val_video)
    if progress:
        print_epoch(row, cfg.train.num_epoch, totals.last_teacher_forcing, is_best)
    return best_psnr


def train(cfg: RunConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run in cfg.train.save_root; returns the final summary.

    Under torchrun every rank calls this; the summary is complete on rank 0 only.
    """
    with distributed.process_group(cfg.train.device) as device:
        return _train(cfg, device, resume=resume, progress=progress and distributed.is_main())


def _train(cfg: RunConfig, device: torch.device, *, resume: bool, progress: bool) -> dict[str, Any]:
    t, run, main = cfg.train, RunFolder(cfg.train.save_root), distributed.is_main()
    with distributed.fail_together():  # a UserError on any rank stops every rank
        start = start_or_resume(run, cfg, resume)
        cfg = record_data_skeleton(cfg, start.checkpoint)  # how the data's poses are drawn, where recorded
        data = load_training_data(cfg, distributed.world_size(), progress)
        if main:
            run.prepare()  # after the data checks, so bad input leaves no run folder behind
    opt = build_optimisation(cfg, device, start.checkpoint, distributed.world_size())
    if main:
        atomic_write_text(run.config, json.dumps(cfg.to_dict(), indent=2) + "\n")
    precision = training_precision(device, t.precision)  # once: "auto" reads /proc/cpuinfo
    autocast = lambda: autocast_for(device, precision)  # noqa: E731
    guard, best_psnr, epoch = BadStepGuard(run, cfg), start.best_psnr, start.epoch
    # on a GPU the decoded training video moves there once; batches are gathered on the device
    on_device = VideoOnDevice.of(data.clips.video, device) if device.type == "cuda" else None
    with _epoch_log(run, cfg, start, main) as log, _flushing_denormals():
        try:
            for epoch in range(start.epoch, t.num_epoch):
                started = time.perf_counter()
                plan = plan_epoch(cfg, epoch)
                loader = clip_loader(data.clips_of_epoch(epoch, cfg.data), cfg, plan, on_device)
                totals = train_epoch(opt, loader, plan, cfg, device, guard, autocast, progress)
                opt.scheduler.step()
                if log is not None:  # rank 0 validates and saves; the others wait for it
                    best_psnr = finish_epoch(run, cfg, opt, data, plan, totals, log, best_psnr, started,
                                             device, progress)
                distributed.barrier()
        except KeyboardInterrupt:
            raise UserError(f"Interrupted during epoch {epoch + 1}. The last finished epoch is saved in "
                            f"{run.last}; resume with: posevae train --resume {run.root}") from None
    rows = log.rows if log is not None else start.rows
    return {"run": str(run.root), "epochs": t.num_epoch, "best_val_psnr": best_psnr,
            "last": rows[-1] if rows else {}}


@contextmanager
def _epoch_log(run: RunFolder, cfg: RunConfig, start: RunStart, main: bool) -> Iterator[EpochLog | None]:
    """Rank 0's EpochLog (metrics.csv, TensorBoard, W&B), closed at the end; None on the other ranks."""
    if not main:
        yield None
        return
    with EpochLog(run, cfg, start.epoch, start.rows) as log:
        yield log


@contextmanager
def _flushing_denormals() -> Iterator[None]:
    """Flush denormals to zero for the duration: they made identical steps up to 10x slower on CPU."""
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushing:  # process-wide CPU state: give it back (it breaks e.g. subnormal float tests)
            torch.set_flush_denormal(False)
