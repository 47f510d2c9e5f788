"""Validation: the whole validation video rolled out from its first frame, as at test time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from posevae.data.lab import Video
from posevae.losses import KLNorm, reconstruction_mse, step_kl
from posevae.media import to_uint8
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
    true frames (the KL needs it); its PSNR is val_psnr_posterior. The two rollouts run as one batch of 2
    (BatchNorm in eval mode treats rows apart), the prior's row drawing its noise from a generator seeded
    ``seed`` as a rollout of its own would, the posterior's from ``seed + 1``. The metrics are computed on
    the device and read back once. "per_frame" holds the per-frame values of frames 1..T-1
    ({"psnr", "psnr_pose", "psnr_box"} -> list). "pred_frames" is the scored rollout itself as uint8
    (T, 3, H, W), frame 0 the given one, left on the device (training copies it out at a new best epoch only).
    """
    frames = to_unit_float(video.frames[None], device)  # (1, T, 3, H, W)
    poses = to_unit_float(video.labels[None], device)
    # accumulated on the device in float64 (what adding Python floats did), read once at the end
    sums = frames.new_zeros(2, dtype=torch.float64)  # MSE, KL of the posterior row

    def on_step(t: int, out: StepOutput) -> None:
        posterior = StepOutput._make(None if x is None else x[1:] for x in out)
        sums[0] += reconstruction_mse(posterior.frame, frames[:, t]).double()
        sums[1] += step_kl(posterior, kl_norm).double()

    with evaluating(model), torch.inference_mode():
        generators = [torch.Generator(device).manual_seed(seed + row) for row in range(2)]
        both = rollout(model, frames[:, 0].expand(2, -1, -1, -1), poses.expand(2, -1, -1, -1, -1),
                       truth=frames.expand(2, -1, -1, -1, -1),
                       use_posterior=torch.tensor([False, True], device=device), generator=generators,
                       on_step=on_step, autocast=autocast)
        per_frame = frame_and_person_psnr(both[0, 1:], frames[0, 1:], poses[0, 1:])  # frames 1..T-1
        steps = frames.shape[1] - 1
        means = torch.stack([per_frame["psnr"].mean(), psnr(both[1, 1:], frames[0, 1:]).mean(),
                             per_frame["psnr_pose"].nanmean(), per_frame["psnr_box"].nanmean()]).double()
        pred_frames = to_uint8(both[0])  # what is scored above; stays on the device until a new best epoch
        read = torch.cat([means, sums / steps, *(v.double() for v in per_frame.values())]).tolist()  # once
    val_psnr, val_psnr_posterior, pose, box, mse, kl = read[:6]
    curves = [read[6 + k * steps: 6 + (k + 1) * steps] for k in range(len(per_frame))]
    return {
        "val_psnr": val_psnr,
        "val_psnr_posterior": val_psnr_posterior,
        "val_mse": mse,
        "val_kl": kl,
        "val_loss": mse + beta * kl,
        "val_psnr_pose": pose,  # NaN only when no label has a pose pixel
        "val_psnr_box": box,
        "per_frame": dict(zip(per_frame, curves, strict=True)),
        "pred_frames": pred_frames,
    }
