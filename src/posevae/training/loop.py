"""The training loop: epochs of clips, teacher forcing, KL annealing, validation, checkpoints, resume.

Per clip (the lab's recipe): for t = 1..T-1 predict frame t from frame t-1 (the truth under teacher
forcing, else the model's own detached output) and pose t, with z from the posterior; the clip's loss is
sum_t MSE_t + beta * KL_t. Because the previous frame's features are detached, every time step is a graph
of its own, so calling backward after each step and stepping the optimizer once per clip gives the
gradients of the summed loss while holding one step's activations instead of T (about a tenth of the
memory at T = 16; see tests/test_train.py for the equality).

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
import re
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from posevae.config import RunConfig, config_diff
from posevae.data.lab import ClipDataset, Video, load_val_video, load_video
from posevae.errors import UserError
from posevae.files import atomic_write_text
from posevae.losses import gradient_difference_loss, reconstruction_mse, step_kl
from posevae.metrics import frame_and_person_psnr, psnr
from posevae.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from posevae.model.rollout import evaluating, rollout, to_unit_float
from posevae.model.vae import PoseVAE
from posevae.run_folder import RunFolder, per_frame_csv
from posevae.schedules import kl_beta, teacher_forcing_ratio
from posevae.training import distributed

# Keys of the config that may differ when resuming (they do not change the numbers; a run folder may move).
RESUMABLE_CHANGES = {"train.device", "data.num_workers", "data.cache_dir", "data.DR", "train.save_root"}


class TrainingDiverged(UserError):
    """Too many non-finite losses in a row; the last good checkpoint is intact."""


@dataclass
class ClipStats:
    loss: float
    mse: float
    kl: float
    finite: bool


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast where it is fast (CUDA with bf16, CPUs with AMX); fp32 otherwise."""
    if precision == "fp32":
        return nullcontext()
    if precision == "auto" and not fast_bf16_available(device):
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def fast_bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def train_clip(
    model: PoseVAE,
    frames: torch.Tensor,
    poses: torch.Tensor,
    *,
    beta: float,
    teacher_forcing: bool,
    kl_norm: str = "elements",
    autocast=None,
    gdl_weight: float = 0.0,
) -> ClipStats:
    """Forward and backward one batch of clips (B, T, 3, H, W) in [0, 1]; gradients accumulate in .grad.

    The loss of a step is MSE + beta * KL, plus ``gdl_weight`` times the gradient-difference loss when it is
    not 0 (``loss`` then includes that term; ``mse`` stays the MSE alone).

    Calls backward once per time step, finite or not; the caller zeroes the gradients before and steps the
    optimizer after. Returns per-predicted-frame means of the loss terms and whether every step was finite
    (when one is not, the caller must discard the gradients). Reads the losses back to the host once per
    clip, so on a GPU the steps queue up without waiting.

    With a DistributedDataParallel model the gradients are all-reduced once per clip, in the last step's
    backward (the other steps run under no_sync()); since every rank runs every backward, none waits on the
    all-reduce alone, and the caller discards the gradients on all ranks together.
    """
    sums = {"loss": frames.new_zeros(()), "mse": frames.new_zeros(()), "kl": frames.new_zeros(())}
    steps = frames.shape[1] - 1
    ddp = isinstance(model, DistributedDataParallel)

    def on_step(t: int, out) -> None:
        mse = reconstruction_mse(out.frame, frames[:, t])
        kl = step_kl(out, kl_norm)
        loss = mse + beta * kl
        if gdl_weight:  # skipped at 0: the lab's loss, bit for bit
            loss = loss + gdl_weight * gradient_difference_loss(out.frame, frames[:, t])
        loss.backward()  # a non-finite loss poisons the gradients, which the caller then discards
        sums["loss"] += loss.detach()
        sums["mse"] += mse.detach()
        sums["kl"] += kl.detach()

    forward = _sync_on_last_forward(model, steps) if ddp else model
    rollout(forward, frames[:, 0], poses, truth=frames, use_posterior=True, teacher_forcing=teacher_forcing,
            on_step=on_step, autocast=autocast)
    # one host-device sync per clip, here (not one per step): a NaN or Inf in any step shows in the sums
    loss, mse, kl = torch.stack(list(sums.values())).tolist()
    finite = math.isfinite(loss) and math.isfinite(mse) and math.isfinite(kl)
    return ClipStats(loss / steps, mse / steps, kl / steps, finite=finite)


def _sync_on_last_forward(model: DistributedDataParallel, forwards: int):
    """The DDP model's forward for a rollout of `forwards` steps: all but the last run under no_sync()."""
    count = 0

    def forward(*args, **kwargs):
        nonlocal count
        count += 1
        with model.no_sync() if count < forwards else nullcontext():
            return model(*args, **kwargs)

    return forward


def evaluate_video(
    model: PoseVAE,
    video: Video,
    *,
    device: torch.device,
    beta: float,
    noise_scale: float,
    seed: int,
    kl_norm: str = "elements",
    autocast=None,
) -> dict[str, Any]:
    """Fully autoregressive validation over the whole video.

    val_psnr (and the per-frame curve) comes from a rollout with z from the prior (noise scaled by noise_scale),
    exactly as at test time; so do val_psnr_pose and val_psnr_box, the PSNR over the pose region and over
    the person box of each frame's label (posevae.metrics; frames with an empty label are skipped).
    val_mse / val_kl / val_loss come from a second autoregressive rollout with z from the posterior of the
    true frames (the KL needs it); its PSNR is val_psnr_posterior. "per_frame" holds the per-frame values
    of frames 1..T-1 ({"psnr", "psnr_pose", "psnr_box"} -> list).
    """
    frames = to_unit_float(video.frames[None], device)  # (1, T, 3, H, W)
    poses = to_unit_float(video.labels[None], device)
    # accumulated on the device in float64 (what adding Python floats did), read once at the end
    sums = {"mse": frames.new_zeros((), dtype=torch.float64), "kl": frames.new_zeros((), dtype=torch.float64)}

    def on_step(t: int, out) -> None:
        sums["mse"] += reconstruction_mse(out.frame, frames[:, t]).double()
        sums["kl"] += step_kl(out, kl_norm).double()

    with evaluating(model), torch.inference_mode():
        gen = torch.Generator(device).manual_seed(seed)
        prior = rollout(model, frames[:, 0], poses, noise_scale=noise_scale, generator=gen, autocast=autocast)
        post = rollout(model, frames[:, 0], poses, truth=frames, use_posterior=True, generator=gen,
                       on_step=on_step, autocast=autocast)
    per_frame = {name: values.cpu() for name, values in  # frames 1..T-1; frame 0 is given
                 frame_and_person_psnr(prior[0, 1:], frames[0, 1:], poses[0, 1:]).items()}
    steps = frames.shape[1] - 1
    mse, kl = sums["mse"].item() / steps, sums["kl"].item() / steps
    return {
        "val_psnr": per_frame["psnr"].mean().item(),
        "val_psnr_posterior": psnr(post[0, 1:], frames[0, 1:]).mean().item(),
        "val_mse": mse,
        "val_kl": kl,
        "val_loss": mse + beta * kl,
        "val_psnr_pose": per_frame["psnr_pose"].nanmean().item(),  # NaN only when no label has a pose pixel
        "val_psnr_box": per_frame["psnr_box"].nanmean().item(),
        "per_frame": {name: values.tolist() for name, values in per_frame.items()},
    }


def build_optimizer(model: PoseVAE, cfg: RunConfig):
    t = cfg.train
    opt_cls = torch.optim.AdamW if t.optim == "AdamW" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=t.lr)
    if t.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t.num_epoch)
    elif t.lr_schedule == "multistep":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(t.milestones), gamma=t.gamma)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return optimizer, scheduler


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def train(cfg: RunConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run in cfg.train.save_root; returns the final summary.

    Under torchrun every rank calls this; the summary is complete on rank 0 only.
    """
    with distributed.process_group(cfg.train.device) as device:
        return _train(cfg, device, resume=resume, progress=progress and distributed.is_main())


def _train(cfg: RunConfig, device: torch.device, *, resume: bool, progress: bool) -> dict[str, Any]:
    t, d = cfg.train, cfg.data
    run = RunFolder(t.save_root)
    main, world = distributed.is_main(), distributed.world_size()

    start_epoch, best_psnr, rows, ckpt = 0, -math.inf, [], None
    with distributed.fail_together():  # a UserError on any rank stops every rank
        if resume:
            if not run.last.exists():
                raise UserError(f"Nothing to resume in {run.root}: {run.last} does not exist. Start the run without "
                                "--resume, or pass the folder of an earlier run.")
            ckpt = load_checkpoint(run.last)
            diff = [line for line in config_diff(ckpt.config.to_dict(), cfg.to_dict())
                    if line.split(":")[0] not in RESUMABLE_CHANGES]
            if diff:
                raise UserError(f"The run in {run.root} was started with another config ({'; '.join(diff)}; "
                                "stored != requested): resume with the stored options (just `--resume RUN`) or "
                                "start a new run in another --save_root.")
            start_epoch = ckpt.train_state["epoch"] + 1
            best_psnr = ckpt.train_state.get("best_psnr", -math.inf)
            if start_epoch >= t.num_epoch:
                raise UserError(f"The run in {run.root} already finished its {t.num_epoch} epochs; nothing to resume. "
                                f"Its best checkpoint is {run.best}.")
            rows = [r for r in run.read_metrics() if int(r["epoch"]) < start_epoch]
        elif run.last.exists():
            raise UserError(f"{run.root} already holds a run ({run.last}): resume it with `posevae train --resume "
                            f"{run.root}`, or choose another --save_root.")

        train_video = load_video(d.DR, "train", cfg.model.frame_H, cfg.model.frame_W, d.cache_dir,
                                 progress=progress)
        val_video = load_val_video(d.DR, cfg.model.frame_H, cfg.model.frame_W, d.val_vi_len, d.cache_dir,
                                   progress=progress)
        full_set = ClipDataset(train_video, d.train_vi_len, d.stride, d.partial)
        fast_set = ClipDataset(train_video, d.train_vi_len, d.stride, d.partial * d.fast_partial) if d.fast_train else None
        for clips, what in ((full_set, ""), (fast_set, " with --fast_partial")):
            if clips is not None and t.batch_size > len(clips) // world:
                per = f" ({world} processes share them; --batch_size is per process)" if world > 1 else ""
                raise UserError(f"--batch_size {t.batch_size} is larger than the {len(clips)} training clips of "
                                f"{d.train_vi_len} frames in {d.DR}{what}{per}: lower --batch_size or "
                                "--train_vi_len.")
        if main:
            run.prepare()  # after the data checks, so bad input leaves no run folder behind

    torch.manual_seed(t.seed)
    net = PoseVAE(cfg.model).to(device)
    if t.channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(net, cfg)
    if ckpt is not None:  # every rank loads the same checkpoint
        net.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        scheduler.load_state_dict(ckpt.train_state["scheduler"])
    # net: the model itself (validation, checkpoints); model: what trains (compiled, DDP-wrapped under torchrun)
    model = torch.compile(net) if t.compile else net
    if world > 1:
        model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if main:
        atomic_write_text(run.config, json.dumps(cfg.to_dict(), indent=2) + "\n")
    autocast = lambda: autocast_for(device, t.precision)  # noqa: E731
    writer = _open_tensorboard(run, start_epoch) if main else _NullWriter()
    wandb_run = _open_wandb(run, cfg) if t.log_wandb and main else None
    bad_in_a_row = 0
    epoch = start_epoch
    flush_denormal = torch.set_flush_denormal(True)  # denormals made identical steps up to 10x slower on CPU
    try:
        for epoch in range(start_epoch, t.num_epoch):
            started = time.perf_counter()
            seed = epoch_seed(t.seed, epoch)
            torch.manual_seed(seed + (distributed.rank() << 32))  # rank 0: seed; other ranks: their own noise
            draw = random.Random(seed)
            tfr = teacher_forcing_ratio(epoch, t.tfr, t.tfr_sde, t.tfr_d_step)
            beta = kl_beta(epoch, t.kl_anneal_type, t.num_epoch, t.kl_anneal_cycle, t.kl_anneal_ratio)
            use_tf = draw.random() < tfr
            dataset = fast_set if fast_set is not None and epoch < d.fast_train_epoch else full_set
            if world > 1:  # each rank its share of the clips; --batch_size is per process
                sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
                sampler.set_epoch(epoch)
                loader = DataLoader(dataset, batch_size=t.batch_size, sampler=sampler, drop_last=True,
                                    num_workers=d.num_workers)
            else:
                loader = DataLoader(dataset, batch_size=t.batch_size, shuffle=True, drop_last=True,
                                    generator=torch.Generator().manual_seed(seed), num_workers=d.num_workers)
            totals = {"loss": 0.0, "mse": 0.0, "kl": 0.0}
            n_ok = skipped = tf_batches = 0
            lr = optimizer.param_groups[0]["lr"]
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{t.num_epoch}", disable=not progress, leave=False,
                       dynamic_ncols=True)
            model.train()
            for frames_u8, poses_u8 in bar:
                if t.tf_per == "batch":
                    use_tf = draw.random() < tfr
                frames = to_unit_float(frames_u8, device)
                poses = to_unit_float(poses_u8, device)
                optimizer.zero_grad(set_to_none=True)
                stats = train_clip(model, frames, poses, beta=beta, teacher_forcing=use_tf, kl_norm=t.kl_norm,
                                   autocast=autocast, gdl_weight=t.gdl_weight)
                grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip) if t.grad_clip > 0
                             else _grad_norm(model))
                finite = distributed.all_true(stats.finite, device)  # ranks skip a step together
                if not finite or not torch.isfinite(grad_norm):
                    optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    bad_in_a_row += 1
                    if bad_in_a_row >= t.max_bad_steps:
                        kept = (f"The last good checkpoint {run.last} is intact" if run.last.exists() or not main
                                else "No epoch finished, so no checkpoint was written")
                        raise TrainingDiverged(
                            f"Training diverged: {bad_in_a_row} non-finite losses in a row in epoch {epoch + 1}. "
                            f"{kept}; lower --lr (now {t.lr}) or --grad_clip, or check the data, then resume or "
                            "restart.")
                    continue
                bad_in_a_row = 0
                optimizer.step()
                n_ok += 1
                distributed.write_weight_hash(model, epoch, n_ok)
                tf_batches += use_tf
                for k in totals:
                    totals[k] += getattr(stats, k)
                bar.set_postfix(tf="on" if use_tf else "off", tfr=f"{tfr:.2f}", beta=f"{beta:.3f}",
                                loss=f"{stats.loss:.4g}", lr=f"{lr:.2e}")
            bar.close()
            scheduler.step()
            if not main:  # rank 0 validates and saves; the others wait for it
                distributed.barrier()
                continue
            row: dict[str, Any] = {"epoch": epoch, **{k: v / max(n_ok, 1) for k, v in totals.items()},
                                   "beta": beta, "tfr": tfr, "teacher_forcing": tf_batches / max(n_ok, 1),
                                   "lr": lr, "skipped_steps": skipped}
            val = evaluate_video(net, val_video, device=device, beta=beta, noise_scale=cfg.sample.noise_scale,
                                 seed=cfg.sample.sample_seed, kl_norm=t.kl_norm, autocast=autocast)
            per_frame = val.pop("per_frame")
            row.update(val)
            row["seconds"] = time.perf_counter() - started
            rows.append({k: _fmt(v) for k, v in row.items()})
            run.write_metrics(rows)
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(key, float(value), epoch)
            writer.flush()
            if wandb_run is not None:
                wandb_run.log({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)
            is_best = val["val_psnr"] > best_psnr
            best_psnr = max(best_psnr, val["val_psnr"])
            state = Checkpoint(cfg, net.state_dict(), {"epoch": epoch, "best_psnr": best_psnr,
                                                         "scheduler": scheduler.state_dict(),
                                                         "val_psnr": val["val_psnr"]},
                               optimizer.state_dict())
            if is_best:
                save_checkpoint(run.best, state)
                atomic_write_text(run.per_frame, per_frame_csv(per_frame))
            if (epoch + 1) % t.per_save == 0:
                save_checkpoint(run.checkpoints / f"epoch_{epoch + 1}.safetensors", state)
            save_checkpoint(run.last, state)  # last, so a crash before it replays this epoch on resume
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{t.num_epoch}: loss {row['loss']:.4g} (mse {row['mse']:.4g}, "
                           f"kl {row['kl']:.4g}, beta {beta:.3f}), tf {'on' if use_tf else 'off'} "
                           f"(ratio {tfr:.2f}), val PSNR {val['val_psnr']:.2f} dB "
                           f"(pose {val['val_psnr_pose']:.2f}, box {val['val_psnr_box']:.2f})"
                           f"{' (best)' if is_best else ''}, {row['seconds']:.1f} s", file=sys.stderr)
            distributed.barrier()
    except KeyboardInterrupt:
        raise UserError(f"Interrupted during epoch {epoch + 1}. The last finished epoch is saved in {run.last}; "
                        f"resume with: posevae train --resume {run.root}") from None
    finally:
        writer.close()
        if wandb_run is not None:
            wandb_run.finish()
        if flush_denormal:  # process-wide CPU state: give it back (it breaks e.g. subnormal float tests)
            torch.set_flush_denormal(False)
    return {"run": str(run.root), "epochs": t.num_epoch, "best_val_psnr": best_psnr,
            "last": rows[-1] if rows else {}}


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


class _NullWriter:
    def add_scalar(self, *args: Any, **kwargs: Any) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def _open_wandb(run: RunFolder, cfg: RunConfig):
    """Weights & Biases, only when asked (--log_wandb); one W&B run per run folder, resumed with it."""
    try:
        import wandb
    except ImportError:
        raise UserError("--log_wandb needs the wandb package: `pip install wandb` (or `pip install "
                        "posevae[wandb]`), or drop --log_wandb; metrics.csv and TensorBoard log without it.") from None
    run_id = re.sub(r"[^A-Za-z0-9_-]", "-", str(run.root.resolve()))[-64:]
    return wandb.init(project="posevae", name=run.root.name, id=run_id, resume="allow", dir=str(run.root),
                      config=cfg.to_dict())


def _open_tensorboard(run: RunFolder, start_epoch: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
        return _NullWriter()
    return SummaryWriter(str(run.tensorboard), purge_step=start_epoch if start_epoch else None)
