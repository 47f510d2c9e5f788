"""Validation: the whole validation video rolled out from its first frame, as at test time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from posevae.data.lab import Video
from posevae.losses import KLNorm, reconstruction_mse, step_kl
from posevae.metrics import frame_and_person_psnr, psnr
from posevae.model.rollout import evaluating, rollout, to_unit_float
from posevae.model.vae import PoseVAE, StepOutput


def evaluate_video(
    model: PoseVAE,
    video: Video,
    *,
    device: torch.device,
    beta: float,
    noise_scale: float,
    seed: int,
    kl_norm: KLNorm = "elements",
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> dict[str, Any]:
    """Fully autoregressive validation over the whole video.

    val_psnr (and the per-frame curve) comes from a rollout with z from the prior (noise scaled by
    noise_scale), exactly as at test time; so do val_psnr_pose and val_psnr_box, the PSNR over the pose region
    and over the person box of each frame's label (posevae.metrics; frames with an empty label are skipped).
    val_mse / val_kl / val_loss come from a second autoregressive rollout with z from the posterior of the
    true frames (the KL needs it); its PSNR is val_psnr_posterior. "per_frame" holds the per-frame values
    of frames 1..T-1 ({"psnr", "psnr_pose", "psnr_box"} -> list).
    """
    frames = to_unit_float(video.frames[None], device)  # (1, T, 3, H, W)
    poses = to_unit_float(video.labels[None], device)
    # accumulated on the device in float64 (what adding Python floats did), read once at the end
    sums = {"mse": frames.new_zeros((), dtype=torch.float64), "kl": frames.new_zeros((), dtype=torch.float64)}

    def on_step(t: int, out: StepOutput) -> None:
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
