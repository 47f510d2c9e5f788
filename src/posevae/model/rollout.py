"""The one rollout: first frame + pose sequence -> every frame. Training, validation and testing share it.

A rollout walks the sequence one step at a time. At step t the model predicts frame t from the previous
frame and pose t; the previous frame is the ground truth (teacher forcing) or the model's own detached
prediction. The latent comes from the posterior q(z | frame t, pose t) when ``use_posterior`` (training,
and the validation loss) or from the prior, N(0, noise_scale^2 I) or the learned one (generation). ``on_step``
sees every
:class:`~posevae.model.vae.StepOutput`: training computes the loss and calls backward there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import cast

import torch
from torch import nn

from posevae.config import DEFAULT_NOISE_SCALE
from posevae.model.cuda_graph import StepInputs, can_graph, graphed_or_eager
from posevae.model.vae import PoseVAE, RandomSource, StepOutput, standard_normal

Z_MODES = ("sample", "mean")  # z drawn from the prior, or its mean (deterministic)


def to_unit_float(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 images (any shape) -> float32 in [0, 1] on ``device`` (one host-to-device copy, then convert)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Put BatchNorm and friends in eval mode for the duration, then restore the previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def rollout(
    model: Callable[..., StepOutput],
    first_frame: torch.Tensor,
    poses: torch.Tensor,
    *,
    truth: torch.Tensor | None = None,
    use_posterior: bool | torch.Tensor = False,
    teacher_forcing: bool = False,
    noise_scale: float = DEFAULT_NOISE_SCALE,
    z_mode: str = "sample",
    generator: RandomSource = None,
    on_step: Callable[[int, StepOutput], None] | None = None,
    autocast: Callable[[], AbstractContextManager] | None = None,
    noise: torch.Tensor | None = None,
    cuda_graphs: bool = True,
) -> torch.Tensor:
    """Generate a sequence. first_frame (B, 3, H, W), poses (B, T, 3, H, W) -> frames (B, T, 3, H, W).

    ``model``: a PoseVAE, or what calls one (compiled, DDP-wrapped). frames[:, 0] is ``first_frame``;
    frames[:, t] for t >= 1 is predicted from frame t-1 and poses[:, t].
    ``truth`` (B, T, 3, H, W) is needed for ``use_posterior`` and ``teacher_forcing``. ``autocast`` makes
    the context (e.g. bf16 autocast) each model step runs in; ``on_step`` runs outside it. ``noise_scale``
    scales the prior's noise (default :data:`~posevae.config.DEFAULT_NOISE_SCALE`, 0.5, as at test time); the
    posterior path does not use it. ``noise`` (B, T - 1, N_dim, h, w): the latent's N(0, I) draws of the
    T - 1 steps, given instead of drawn (the batched training step replays them; see posevae.training.step).
    ``use_posterior`` may be a (B,) bool tensor: only those rows take z from the posterior (validation rolls
    out the prior and the posterior as one batch of 2). On a GPU, without gradient or autocast, the step is
    captured in a CUDA graph and replayed (:mod:`posevae.model.cuda_graph`; ``cuda_graphs=False`` runs
    every step eagerly): the same numbers, without the launch overhead of each step.
    """
    rows = {"posterior_rows": use_posterior} if isinstance(use_posterior, torch.Tensor) else {}
    use_posterior = bool(rows) or bool(use_posterior)
    if (use_posterior or teacher_forcing) and truth is None:
        raise ValueError("rollout: use_posterior and teacher_forcing need the true frames (truth=...)")
    if first_frame.shape[0] != poses.shape[0] or first_frame.shape[1:] != poses.shape[2:]:
        raise ValueError(f"rollout: first frame {tuple(first_frame.shape)} does not match poses "
                         f"{tuple(poses.shape)}")
    options = {"noise_scale": noise_scale, "z_mode": z_mode, **rows}
    graph = cuda_graphs and can_graph(model, first_frame, autocast)
    graphed: Callable[[StepInputs], StepOutput] | None = None
    frames = [first_frame]
    prev = first_frame
    for t in range(1, poses.shape[1]):
        step_noise = noise[:, t - 1] if noise is not None else None
        if graph and step_noise is None and z_mode != "mean":  # drawn here as the step would draw it
            latent = cast(PoseVAE, model).latent_shape  # can_graph checked it has one
            step_noise = standard_normal((first_frame.shape[0], *latent), first_frame, generator)
        inputs: StepInputs = {"prev_frame": prev, "next_pose": poses[:, t],
                              "next_frame": truth[:, t] if use_posterior and truth is not None else None,
                              "noise": step_noise}
        if graph and t == 1:
            graphed = graphed_or_eager(model, inputs, options)
        with autocast() if autocast is not None else nullcontext():
            out = graphed(inputs) if graphed is not None else model(**inputs, generator=generator, **options)
        if on_step is not None:
            on_step(t, out)
        pred = out.frame.detach().to(first_frame.dtype)  # fp32 out of bf16 autocast
        frames.append(pred.clone() if graphed is not None else pred)  # a replay overwrites its outputs
        prev = truth[:, t] if teacher_forcing and truth is not None else pred
    return torch.stack(frames, dim=1)


def generate(
    model: PoseVAE,
    first_frame: torch.Tensor,
    poses: torch.Tensor,
    *,
    noise_scale: float = DEFAULT_NOISE_SCALE,
    z_mode: str = "sample",
    generator: RandomSource = None,
    autocast: Callable[[], AbstractContextManager] | None = None,
    on_step: Callable[[int, StepOutput], None] | None = None,
) -> torch.Tensor:
    """Test-time rollout from the prior, in eval mode and inference mode:
    (B, 3, H, W), (B, T, 3, H, W) -> (B, T, 3, H, W)."""
    with evaluating(model), torch.inference_mode():
        return rollout(model, first_frame, poses, noise_scale=noise_scale, z_mode=z_mode, generator=generator,
                       autocast=autocast, on_step=on_step)


def reconstruct(
    model: PoseVAE,
    first_frame: torch.Tensor,
    poses: torch.Tensor,
    truth: torch.Tensor,
    *,
    autocast: Callable[[], AbstractContextManager] | None = None,
    on_step: Callable[[int, StepOutput], None] | None = None,
) -> torch.Tensor:
    """The posterior's upper bound: an autoregressive rollout with z = the posterior mean of the true frames.

    Only the latent sees the truth (the previous frame is the model's own), so this is what the model
    could generate if its prior guessed the latent perfectly. Shapes as :func:`generate`, plus truth.
    """
    with evaluating(model), torch.inference_mode():
        return rollout(model, first_frame, poses, truth=truth, use_posterior=True, z_mode="mean",
                       autocast=autocast, on_step=on_step)
