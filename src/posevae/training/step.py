"""One training step: a batch of clips forward and backward, then the optimizer, unless it was not finite.

Per clip (the lab's recipe): for t = 1..T-1 predict frame t from frame t-1 (the truth under teacher
forcing, else the model's own detached output) and pose t, with z from the posterior; the clip's loss is
sum_t MSE_t + beta * KL_t. Because the previous frame's features are detached, every time step is a graph
of its own, so calling backward after each step and stepping the optimizer once per clip gives the
gradients of the summed loss while holding one step's activations instead of T (about a tenth of the
memory at T = 16; see tests/test_train_step.py for the equality).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from posevae.losses import KLNorm, gradient_difference_loss, person_region_mse, reconstruction_mse, step_kl
from posevae.model.rollout import rollout
from posevae.model.vae import PoseVAE, StepOutput
from posevae.training import distributed


@dataclass
class ClipStats:
    """A batch of clips' loss terms, each the mean over its predicted frames (the lab's clip loss is their sum
    over the T - 1 frames), and whether every step was finite."""

    loss_per_frame: float  # MSE + beta * KL (+ gdl_weight * GDL + person_weight * person MSE)
    mse_per_frame: float
    kl_per_frame: float
    finite: bool


def train_clip(
    model: nn.Module,
    frames: torch.Tensor,
    poses: torch.Tensor,
    *,
    beta: float,
    teacher_forcing: bool,
    kl_norm: KLNorm = "elements",
    autocast: Callable[[], AbstractContextManager] | None = None,
    gdl_weight: float = 0.0,
    person_weight: float = 0.0,
) -> ClipStats:
    """Forward and backward one batch of clips (B, T, 3, H, W) in [0, 1]; gradients accumulate in .grad.

    ``model``: a PoseVAE, or its compiled or DDP-wrapped form. The loss of a step is MSE + beta * KL, plus
    ``gdl_weight`` times the gradient-difference loss when it is not 0 (``loss_per_frame`` then includes that
    term; ``mse_per_frame`` stays the MSE alone), and ``person_weight`` times the MSE over the pose region of
    the step's own label (:func:`posevae.losses.person_region_mse`) when that is not 0.

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

    def on_step(t: int, out: StepOutput) -> None:
        mse = reconstruction_mse(out.frame, frames[:, t])
        kl = step_kl(out, kl_norm)
        loss = mse + beta * kl
        if gdl_weight:  # skipped at 0: the lab's loss, bit for bit
            loss = loss + gdl_weight * gradient_difference_loss(out.frame, frames[:, t])
        if person_weight:  # likewise
            loss = loss + person_weight * person_region_mse(out.frame, frames[:, t], poses[:, t])
        loss.backward()  # a non-finite loss poisons the gradients, which the caller then discards
        sums["loss"] += loss.detach()
        sums["mse"] += mse.detach()
        sums["kl"] += kl.detach()

    forward = _sync_on_last_forward(model, steps) if isinstance(model, DistributedDataParallel) else model
    rollout(forward, frames[:, 0], poses, truth=frames, use_posterior=True, teacher_forcing=teacher_forcing,
            on_step=on_step, autocast=autocast)
    # one host-device sync per clip, here (not one per step): a NaN or Inf in any step shows in the sums
    loss, mse, kl = torch.stack(list(sums.values())).tolist()
    finite = math.isfinite(loss) and math.isfinite(mse) and math.isfinite(kl)
    return ClipStats(loss / steps, mse / steps, kl / steps, finite=finite)


def _sync_on_last_forward(model: DistributedDataParallel, forwards: int) -> Callable[..., StepOutput]:
    """The DDP model's forward for a rollout of `forwards` steps: all but the last run under no_sync()."""
    count = 0

    def forward(*args: Any, **kwargs: Any) -> StepOutput:
        nonlocal count
        count += 1
        with model.no_sync() if count < forwards else nullcontext():
            return model(*args, **kwargs)

    return forward


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


@dataclass
class Optimisation:
    """What a training step changes: the model, what runs its steps, the optimizer and the LR schedule."""

    model: PoseVAE  # the model itself: validation and checkpoints see it
    step_model: nn.Module  # what runs the training steps: the model, compiled and/or DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def train_batch(
    opt: Optimisation,
    frames: torch.Tensor,
    poses: torch.Tensor,
    *,
    beta: float,
    teacher_forcing: bool,
    kl_norm: KLNorm,
    grad_clip: float,
    gdl_weight: float,
    device: torch.device,
    person_weight: float = 0.0,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> ClipStats | None:
    """Train on one batch of clips (B, T, 3, H, W) in [0, 1]: forward, backward, clip the gradients, step.

    Returns the clip's statistics, or None when the loss or the gradient was not finite (on any rank): the
    step is then skipped, its gradients discarded, the optimizer not stepped, and the BatchNorm running
    statistics that its forward passes updated put back as they were.
    """
    opt.optimizer.zero_grad(set_to_none=True)
    batchnorm_stats = _batchnorm_buffers(opt.model)
    stats = train_clip(opt.step_model, frames, poses, beta=beta, teacher_forcing=teacher_forcing,
                       kl_norm=kl_norm, autocast=autocast, gdl_weight=gdl_weight,
                       person_weight=person_weight)
    grad_norm = (torch.nn.utils.clip_grad_norm_(opt.step_model.parameters(), grad_clip) if grad_clip > 0
                 else _grad_norm(opt.step_model))
    finite = distributed.all_true(stats.finite, device)  # ranks skip a step together
    if not finite or not torch.isfinite(grad_norm):
        opt.optimizer.zero_grad(set_to_none=True)
        _restore(batchnorm_stats)  # the forward passes of a skipped step leave no trace either
        return None
    opt.optimizer.step()
    return stats


def _batchnorm_buffers(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(buffer, a copy of it) for the running statistics of every BatchNorm layer of ``model``."""
    return [(buffer, buffer.clone()) for module in model.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) for buffer in module.buffers()]


@torch.no_grad()
def _restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for buffer, copy in saved:
        buffer.copy_(copy)
