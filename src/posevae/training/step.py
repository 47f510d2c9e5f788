"""One training step: a batch of clips forward and backward, then the optimizer, unless it was not finite.

Per clip (the lab's recipe): for t = 1..T-1 predict frame t from frame t-1 (the truth under teacher
forcing, else the model's own detached output) and pose t, with z from the posterior; the clip's loss is
sum_t MSE_t + beta * KL_t. The previous frame's features are detached and a prediction is fed back detached,
so the T - 1 model steps of a clip depend on each other through their inputs only, never through the
gradient. Two ways to compute the same sums (``--step``):

* ``sequential`` (the lab's order): one model step after the other, a backward after each, holding one
  step's activations at a time.
* ``batched``: the T - 1 steps as one batch of B x (T - 1), one forward and one backward (on a CPU in
  chunks of whole time steps that keep the activations in the caches, :func:`batched_step_frames`).
  Under teacher forcing every previous frame is a true frame; without it, the clip is first rolled out
  without gradient (forward only, as generation does) and the batched step runs on the rolled-out previous
  frames with the same latent noise. BatchNorm normalises each time step's B frames apart and updates its
  running statistics once per step, in order (:func:`per_step_statistics`), so what differs from
  ``sequential`` is only the order in which the noise is drawn: tests/test_train_step.py checks the same
  loss, gradients and running statistics, in eval and in training mode.
* ``auto``: batched, except on a CPU without teacher forcing (:func:`step_for`).

``sequential`` is the default: with BatchNorm per time step the batched step trains the same model, and it
validated the same as the sequential one at the demo's recipe (which uses ``auto``), but lower in both short
runs at the lab's (docs/quality.md). Batched is T - 1 times fewer, larger kernels: on a GPU the step stops
waiting for Python and kernel launches; on a CPU it gains less, and loses where the extra rollout costs more
(docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from posevae.config import TrainStep
from posevae.losses import KLNorm, gradient_difference_loss, person_region_mse, reconstruction_mse, step_kl
from posevae.model.layers import StepBatchNorm2d
from posevae.model.rollout import evaluating, rollout
from posevae.model.vae import PoseVAE, StepOutput, standard_normal
from posevae.training import distributed

# The batched step's activation budget on a CPU: frames per forward = this // the widest layer's bytes a frame
# (2 AMD EPYC cores, 32 MiB L3: the sharp preset trained fastest at 24-32 frames a forward, 768 KiB per frame,
# the lab preset at 4-8 frames, 6 MiB per frame; docs/performance.md).
CPU_STEP_BYTES = 24 * 2**20

StepKind = Literal["batched", "sequential"]  # what --step (auto, batched, sequential) runs for a batch
StepTerms = Callable[[StepOutput, torch.Tensor, torch.Tensor], torch.Tensor]  # one step's (loss, MSE, KL)


@dataclass
class ClipStats:
    """A batch of clips' loss terms, each the mean over its predicted frames (the lab's clip loss is their sum
    over the T - 1 frames), and whether every step was finite."""

    loss_per_frame: float  # MSE + beta * KL (+ gdl_weight * GDL + person_weight * person MSE)
    mse_per_frame: float
    kl_per_frame: float
    finite: bool


def step_loss(out: StepOutput, target: torch.Tensor, pose: torch.Tensor, *, beta: float, kl_norm: KLNorm,
              gdl_weight: float, person_weight: float) -> torch.Tensor:
    """One model step's (loss, MSE, KL), stacked: (3,). ``out`` from the posterior; target, pose (B, 3, H, W).

    loss = MSE + beta * KL, plus ``gdl_weight`` times the gradient-difference loss and ``person_weight`` times
    the MSE over the pose region of the step's own label (:func:`posevae.losses.person_region_mse`) when
    those are not 0 (skipped at 0: the lab's loss, bit for bit).
    """
    mse = reconstruction_mse(out.frame, target)
    kl = step_kl(out, kl_norm)
    loss = mse + beta * kl
    if gdl_weight:
        loss = loss + gdl_weight * gradient_difference_loss(out.frame, target)
    if person_weight:
        loss = loss + person_weight * person_region_mse(out.frame, target, pose)
    return torch.stack([loss, mse, kl])


def step_for(choice: TrainStep, device: torch.device, teacher_forcing: bool) -> StepKind:
    """The step ``--step`` runs: batched or sequential as chosen; "auto" batches, except on a CPU without
    teacher forcing, where the rollout the batched step needs first makes it slower than the sequential one
    (measured on 2 cores, benchmarks/training_step.py: 0.81-0.87x without teacher forcing, 1.06-1.36x with
    it; docs/performance.md)."""
    if choice != "auto":
        return choice
    return "sequential" if device.type == "cpu" and not teacher_forcing else "batched"


def train_clip(
    model: nn.Module,
    frames: torch.Tensor,
    poses: torch.Tensor,
    *,
    beta: float,
    teacher_forcing: bool,
    step: StepKind = "sequential",
    kl_norm: KLNorm = "elements",
    autocast: Callable[[], AbstractContextManager] | None = None,
    gdl_weight: float = 0.0,
    person_weight: float = 0.0,
    noise: torch.Tensor | None = None,
    frames_per_forward: int | None = None,
) -> ClipStats:
    """Forward and backward one batch of clips (B, T, 3, H, W) in [0, 1]; gradients accumulate in .grad.

    ``model``: a PoseVAE, or its compiled or DDP-wrapped form. ``step``: batched or sequential (module doc);
    the loss of a model step is :func:`step_loss`. ``noise`` (B, T - 1, N_dim, h, w): the posterior's N(0, I)
    draws, given instead of drawn (tests compare the two steps with it). ``frames_per_forward``: the batched
    step's frames per forward (whole time steps of the B clips, at least one; None: all B x (T - 1) at once,
    see :func:`batched_step_frames`).

    The caller zeroes the gradients before and steps the optimizer after. Returns per-predicted-frame means of
    the loss terms and whether every step was finite (when one is not, the caller must discard the
    gradients). Reads the losses back to the host once per clip, so on a GPU the work queues up without
    waiting.
    """
    terms = partial(step_loss, beta=beta, kl_norm=kl_norm, gdl_weight=gdl_weight, person_weight=person_weight)
    if step == "batched":
        sums = _batched_clip(model, frames, poses, teacher_forcing=teacher_forcing, terms=terms,
                             autocast=autocast, noise=noise, frames_per_forward=frames_per_forward)
    else:
        sums = _sequential_clip(model, frames, poses, teacher_forcing=teacher_forcing, terms=terms,
                                autocast=autocast, noise=noise)
    # one host-device sync per clip, here: a NaN or Inf in any step shows in the sums
    loss, mse, kl = sums.tolist()
    steps = frames.shape[1] - 1
    finite = math.isfinite(loss) and math.isfinite(mse) and math.isfinite(kl)
    return ClipStats(loss / steps, mse / steps, kl / steps, finite=finite)


def _sequential_clip(model: nn.Module, frames: torch.Tensor, poses: torch.Tensor, *, teacher_forcing: bool,
                     terms: StepTerms, autocast: Callable[[], AbstractContextManager] | None,
                     noise: torch.Tensor | None) -> torch.Tensor:
    """The lab's order: a backward after each model step; returns the (loss, MSE, KL) sums (3,).

    With a DistributedDataParallel model the gradients are all-reduced once per clip, in the last step's
    backward (the other steps run under no_sync()).
    """
    sums = frames.new_zeros(3)

    def on_step(t: int, out: StepOutput) -> None:
        step_terms = terms(out, frames[:, t], poses[:, t])
        step_terms[0].backward()  # a non-finite loss poisons the gradients, which the caller then discards
        sums.add_(step_terms.detach())

    steps = frames.shape[1] - 1
    forward = _sync_on_last_forward(model, steps) if isinstance(model, DistributedDataParallel) else model
    rollout(forward, frames[:, 0], poses, truth=frames, use_posterior=True, teacher_forcing=teacher_forcing,
            on_step=on_step, autocast=autocast, noise=noise)
    return sums


def _batched_clip(model: nn.Module, frames: torch.Tensor, poses: torch.Tensor, *, teacher_forcing: bool,
                  terms: StepTerms, autocast: Callable[[], AbstractContextManager] | None,
                  noise: torch.Tensor | None, frames_per_forward: int | None) -> torch.Tensor:
    """The T - 1 model steps of the clips as batches of B x k frames (k steps; all T - 1 when
    ``frames_per_forward`` is None): a forward and a backward each; returns the (loss, MSE, KL) sums (3,).

    Each step's terms are computed over its own B frames (vmapped), so the sums are the sequential step's,
    also where a term is not a plain mean (the person loss). With several chunks and a DDP model, the
    gradients are all-reduced in the last chunk's backward only.
    """
    batch, steps = frames.shape[0], frames.shape[1] - 1
    core = unwrap(model)
    if noise is None:
        noise = standard_normal((batch, steps, *core.latent_shape), frames)
    previous = (frames[:, :-1] if teacher_forcing
                else rolled_out_previous(core, frames, poses, noise, autocast))
    per_chunk = steps if frames_per_forward is None else max(1, frames_per_forward // batch)
    chunks = [slice(s, s + per_chunk) for s in range(0, steps, per_chunk)]
    forward = (_sync_on_last_forward(model, len(chunks)) if isinstance(model, DistributedDataParallel)
               else model)
    sums = frames.new_zeros(3)
    targets, next_poses = frames[:, 1:], poses[:, 1:]
    for chunk in chunks:
        sums += _forward_backward(forward, core, previous[:, chunk], next_poses[:, chunk], targets[:, chunk],
                                  noise[:, chunk], terms, autocast)
    return sums


def _forward_backward(model: Callable[..., StepOutput], core: PoseVAE, previous: torch.Tensor,
                      poses: torch.Tensor,
                      targets: torch.Tensor, noise: torch.Tensor, terms: StepTerms,
                      autocast: Callable[[], AbstractContextManager] | None) -> torch.Tensor:
    """k model steps (B, k, ...) as one batch of B x k: forward, the (loss, MSE, KL) of each step summed,
    backward; returns the sums, detached (3,)."""
    batch, steps = previous.shape[:2]
    with per_step_statistics(core, steps), autocast() if autocast is not None else nullcontext():
        out = model(previous.flatten(0, 1), poses.flatten(0, 1), targets.flatten(0, 1),
                    noise=noise.flatten(0, 1))  # (B x k, ...)
    per_step = StepOutput._make(None if x is None else x.unflatten(0, (batch, steps)) for x in out)
    over_steps = StepOutput._make(None if x is None else 1 for x in per_step)  # vmap over dim 1 where present
    sums = torch.vmap(terms, in_dims=(over_steps, 1, 1))(per_step, targets, poses).sum(dim=0)  # (3,)
    sums[0].backward()  # a non-finite loss poisons the gradients, which the caller then discards
    return sums.detach()


def batched_step_frames(model: PoseVAE, device: torch.device) -> int | None:
    """How many frames one forward of the batched step takes on ``device``: all of a batch's (None) on a GPU;
    on a CPU as many as keep the model's widest activation within CPU_STEP_BYTES (measured: a larger batch
    leaves the caches, and the element-wise layers then cost more than the fewer calls save;
    docs/performance.md)."""
    if device.type != "cpu":
        return None
    return max(1, CPU_STEP_BYTES // widest_activation_bytes(model))


def widest_activation_bytes(model: PoseVAE) -> int:
    """Bytes of the largest output of any layer of ``model`` for one frame (one posterior step, no grad)."""
    sizes: list[int] = []

    def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(record) for m in leaves]
    c = model.config
    parameter = next(model.parameters())
    frame = torch.zeros(1, 3, c.frame_H, c.frame_W, device=parameter.device, dtype=parameter.dtype)
    try:
        with torch.no_grad(), evaluating(model):
            model(frame, frame, frame, z_mode="mean")
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes)


def rolled_out_previous(model: PoseVAE, frames: torch.Tensor, poses: torch.Tensor, noise: torch.Tensor,
                        autocast: Callable[[], AbstractContextManager] | None) -> torch.Tensor:
    """The previous frames (B, T - 1, 3, H, W) of a rollout without teacher forcing: the first true frame,
    then the model's own predictions, with z from the posterior drawn with ``noise``. Forward only, in the
    model's mode (training: BatchNorm on the batch's statistics, as the sequential step sees them); the
    BatchNorm running statistics are left as they were."""
    with torch.no_grad(), _batchnorm_statistics_kept(model):
        rolled = rollout(model, frames[:, 0], poses[:, :-1], truth=frames[:, :-1], use_posterior=True,
                         teacher_forcing=False, autocast=autocast, noise=noise[:, :-1])
    return rolled


def unwrap(model: nn.Module) -> PoseVAE:
    """The PoseVAE inside a DDP-wrapped and/or compiled model."""
    inner: Any = model.module if isinstance(model, DistributedDataParallel) else model
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile's OptimizedModule
    if not isinstance(inner, PoseVAE):
        raise TypeError(f"expected a PoseVAE (or a compiled / DDP-wrapped one), got {type(model).__name__}")
    return inner


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
    step_frames: int | None = None  # the batched step's frames per forward (None: all; batched_step_frames)

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
    step: TrainStep = "sequential",
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
                       step=step_for(step, device, teacher_forcing),
                       kl_norm=kl_norm, autocast=autocast, gdl_weight=gdl_weight,
                       person_weight=person_weight, frames_per_forward=opt.step_frames)
    grad_norm = (torch.nn.utils.clip_grad_norm_(opt.step_model.parameters(), grad_clip) if grad_clip > 0
                 else _grad_norm(opt.step_model))
    finite = distributed.all_true(stats.finite, device)  # ranks skip a step together
    if not finite or not torch.isfinite(grad_norm):
        opt.optimizer.zero_grad(set_to_none=True)
        _restore(batchnorm_stats)  # the forward passes of a skipped step leave no trace either
        return None
    opt.optimizer.step()
    return stats


@contextmanager
def per_step_statistics(model: nn.Module, steps: int) -> Iterator[None]:
    """For the duration, ``model``'s BatchNorm layers (StepBatchNorm2d) take batches of ``steps`` time steps
    per clip (rows clip-major) and normalise each step apart, as the sequential step does."""
    layers = [m for m in model.modules() if isinstance(m, StepBatchNorm2d)]
    for layer in layers:
        layer.steps = steps
    try:
        yield
    finally:
        for layer in layers:
            layer.steps = 1


@contextmanager
def _batchnorm_statistics_kept(model: nn.Module) -> Iterator[None]:
    """BatchNorm's running statistics as they were before, whatever the forward passes inside did."""
    saved = _batchnorm_buffers(model)
    try:
        yield
    finally:
        _restore(saved)


def _batchnorm_buffers(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(buffer, a copy of it) for the running statistics of every BatchNorm layer of ``model``."""
    return [(buffer, buffer.clone()) for module in model.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) for buffer in module.buffers()]


@torch.no_grad()
def _restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for buffer, copy in saved:
        buffer.copy_(copy)
