"""Motion transfer ("Everybody Dance Now"): one first frame, driven by a pose sequence from anywhere else.

The model predicts frame t from frame t-1 and the pose image of frame t, so any pose sequence drives it:
another split, another dataset's skeletons, or a clip of the demo renderer the model never saw
(``posevae data poses``). :func:`transfer` rolls the model out from the prior with
:func:`posevae.model.rollout.generate`, exactly as ``posevae test`` does, and writes under ``out`` only::

    frames/<k>.png          every frame, k = 0..N-1; frame 0 is the given first frame (resized), unchanged
    transfer.gif            the frames, looping, upscaled as ``posevae test`` upscales its GIFs
    transfer.mp4            the same, only when imageio-ffmpeg is installed (``posevae[mp4]``)
    pose_and_frame.gif      pose image | generated frame, side by side
    summary.json            what was made from what (checkpoint, first frame, poses, noise, seed, device)

Poses, N of them, give N frames: pose k is the pose of frame k, so pose 0 (the first frame's) is not used
by the model, as in the course's test sequences. They come from

- a folder of PNG pose images, read as the lab reader reads a split (:mod:`posevae.data.lab`): ordered by
  the number in their names, other files and sub-folders ignored, a PNG without a number in its name or
  one that cannot be decoded is an error;
- a GIF (every frame, via PIL);
- a video (.mp4, .mov, .avi, .mkv, .webm, .m4v) of pose images, when imageio-ffmpeg is installed;
- a video of a person (or, with ``poses_from_video=True``, a folder of frames of one): the poses are
  extracted with MediaPipe (the ``video`` extra) and drawn as labels (:mod:`posevae.data.video.drive`),
  normalised to the person of the first frame as Everybody Dance Now does unless ``normalise=False``.
  ``poses_from_video=None`` (the default) decides by the video's first frame: mostly black is a pose
  rendering, anything else a person. Then ``source_pose_frame.gif`` (and ``.mp4``) shows source video |
  pose | generated frame. The poses are drawn as ``skeleton`` (:mod:`posevae.data.skeleton`: "demo" or
  "openpose"; None: as the checkpoint's training data was drawn, which its config records, else "demo").
  A model only knows the drawing it was trained on: one UserWarning says when the two differ, and one
  when the checkpoint does not record it (a course-template checkpoint, or a run whose data had no record).

Every image is converted to RGB and resized to the checkpoint's ``frame_H x frame_W`` with PIL bilinear,
the lab reader's rule. Every problem with the inputs is a :class:`~posevae.errors.UserError` raised before
``out`` is created, so bad input leaves no output folder behind.
"""


from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from posevae.config import SKELETON_NAMES, SkeletonName
from posevae.device import resolve_device
from posevae.errors import UserError
from posevae.evaluation.pose_inputs import PoseSource, check_pose_count, read_first_frame, read_pose_source
from posevae.evaluation.predict import check_sampling_options, noise_scale_of, prepare_out
from posevae.files import atomic_write_text
from posevae.media import (
    GIF_FPS,
    gif_scale,
    save_frames_png,
    save_gif,
    save_mp4,
    side_by_side,
    tile,
    to_uint8,
)
from posevae.model.checkpoint import Checkpoint, model_from_checkpoint
from posevae.model.rollout import generate, to_unit_float
from posevae.model.template_ckpt import open_checkpoint
from posevae.model.vae import PoseVAE


def transfer(
    ckpt: str | Path,
    first_frame: str | Path,
    poses: str | Path,
    out: str | Path,
    *,
    noise_scale: float | None = None,
    seed: int = 1,
    device: str = "auto",
    z_mode: str = "sample",
    num_frames: int | None = None,
    progress: bool = True,
    poses_from_video: bool | None = None,
    normalise: bool = True,
    skeleton: SkeletonName | None = None,
) -> dict[str, Any]:
    """Drive checkpoint ``ckpt`` from ``first_frame`` with the pose sequence ``poses``; write under ``out``.

    N poses (or the first ``num_frames``, at least 2) give N frames: frame 0 is ``first_frame`` resized to the
    model's size, bit for bit; frame k >= 1 is predicted from frame k-1 and pose k with z from the prior, its
    noise scaled by ``noise_scale`` (None: the checkpoint's ``sample.noise_scale``; ``z_mode`` "mean": the
    prior's mean), drawn from one ``torch.Generator`` seeded ``seed``: the same seed gives the same frames on
    the same device, and the first ``num_frames`` frames of a longer run. The sampling options are checked as
    ``posevae test`` checks them (:func:`posevae.evaluation.predict.check_sampling_options`).
    ``ckpt`` is a checkpoint file, a run folder (its ``checkpoints/last.safetensors``) or a course-template
    ``.ckpt`` (:mod:`posevae.model.template_ckpt`), as for ``posevae test``. ``poses_from_video``,
    ``normalise`` and ``skeleton``: see the module docstring. Returns the summary (also written to
    ``out/summary.json``).
    """
    check_sampling_options(z_mode=z_mode, noise_scale=noise_scale, num_frames=num_frames)  # as posevae test
    if skeleton is not None and skeleton not in SKELETON_NAMES:
        raise UserError(f"--skeleton must be one of {', '.join(SKELETON_NAMES)}, got {skeleton!r}.")
    checkpoint = open_checkpoint(ckpt)  # a .safetensors, a run folder, or a course-template .ckpt
    noise = noise_scale_of(checkpoint, noise_scale)
    H, W = checkpoint.config.model.frame_H, checkpoint.config.model.frame_W
    first = read_first_frame(first_frame, H, W)  # (3, H, W) uint8
    trained = checkpoint.config.data.skeleton  # how the model's training labels were drawn; None: unknown
    drawn: SkeletonName = skeleton or trained or "demo"  # a recorded name is checked by the config
    source = read_pose_source(poses, first_frame, H, W, num_frames, poses_from_video, normalise, progress,
                              skeleton=drawn)
    if source.driven is not None:  # drawn by us (pose images are as they are)
        notice = skeleton_notice(checkpoint, drawn, poses)
        if notice:
            warnings.warn(notice, UserWarning, stacklevel=2)
    check_pose_count(source, poses, num_frames)
    dev = resolve_device(device)
    model = model_from_checkpoint(checkpoint, ckpt, dev)
    out = prepare_out(Path(out))  # after every input check, so bad input leaves no output folder behind
    pred = _drive(model, first, source.labels, noise=noise, z_mode=z_mode, seed=seed, device=dev,
                  progress=progress)
    wrote_mp4 = _write_outputs(out, pred, source, gif_scale(H))
    summary: dict[str, Any] = {
        "checkpoint": str(Path(ckpt).resolve()), "first_frame": str(Path(first_frame).resolve()),
        "poses": str(Path(poses).resolve()), "poses_kind": source.kind, "frames": int(pred.shape[0]),
        "frame_size": [H, W], "noise_scale": noise, "z_mode": z_mode, "seed": seed, "device": str(dev),
        "outputs": {"frames": "frames/", "gif": "transfer.gif", "mp4": "transfer.mp4" if wrote_mp4 else None,
                    "pose_and_frame_gif": "pose_and_frame.gif"},
    }
    if source.driven is not None:
        summary["pose_extraction"] = {**source.driven.info, "skeleton": drawn, "trained_skeleton": trained}
        summary["outputs"]["source_pose_frame_gif"] = "source_pose_frame.gif"
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def skeleton_notice(checkpoint: Checkpoint, drawn: str, poses: str | Path) -> str | None:
    """One line when poses drawn as ``drawn`` are not known to match the drawing ``checkpoint``'s model was
    trained on: they differ, or the checkpoint does not record it; None when they match."""
    trained = checkpoint.config.data.skeleton
    if trained == drawn:
        return None
    if trained is not None:
        return (f"The poses extracted from {poses} are drawn as {drawn}, but the model was trained on "
                f"{trained} pose labels: it will follow them poorly; pass --skeleton {trained}.")
    why = ("a course-template checkpoint records no pose drawing"
           if checkpoint.train_state.get("source") == "course template"
           else "the checkpoint's training data recorded no pose drawing")
    return (f"Cannot tell whether the poses extracted from {poses}, drawn as {drawn}, match the model's "
            f"training labels: {why}.")


def _drive(model: PoseVAE, first: torch.Tensor, labels: torch.Tensor, *, noise: float, z_mode: str, seed: int,
           device: torch.device, progress: bool) -> torch.Tensor:
    """The frames that ``labels`` (N, 3, H, W) drive from ``first`` (3, H, W): uint8 (N, 3, H, W) on the CPU,
    frame 0 the given one, bit for bit; the latents from one generator seeded ``seed``."""
    gen = torch.Generator(device=device).manual_seed(seed)
    with tqdm(total=labels.shape[0] - 1, desc="transfer", unit="frame", disable=not progress) as bar:
        frames = generate(model, to_unit_float(first[None], device), to_unit_float(labels[None], device),
                          noise_scale=noise, z_mode=z_mode, generator=gen,
                          on_step=lambda t, out: bar.update())[0]  # (N, 3, H, W) in [0, 1]
    pred = to_uint8(frames).cpu()
    pred[0] = first  # the given frame, bit for bit
    return pred


def _write_outputs(out: Path, pred: torch.Tensor, source: PoseSource, scale: int) -> bool:
    """frames/, transfer.gif (and .mp4), pose_and_frame.gif, and for a person video source_pose_frame.gif;
    returns whether transfer.mp4 was written."""
    save_frames_png(pred, out / "frames")
    save_gif(out / "transfer.gif", pred, fps=GIF_FPS, scale=scale)
    save_gif(out / "pose_and_frame.gif", side_by_side(source.labels, pred), fps=GIF_FPS, scale=scale)
    wrote_mp4 = save_mp4(out / "transfer.mp4", pred, fps=GIF_FPS, scale=scale)
    if not wrote_mp4:  # an MP4 of an earlier transfer into this folder would mislead
        (out / "transfer.mp4").unlink(missing_ok=True)
    if source.driven is not None:
        shown = source.driven.source[: len(pred)].transpose(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
        frames = torch.from_numpy(np.ascontiguousarray(shown))
        _write_source_pose_frame(out, tile([frames, source.labels, pred]), scale)
    return wrote_mp4


def _write_source_pose_frame(out: Path, tiled: torch.Tensor, gif_scale: int) -> None:
    """source video | pose | generated frame, as a GIF and (with imageio-ffmpeg) an MP4."""
    save_gif(out / "source_pose_frame.gif", tiled, fps=GIF_FPS, scale=gif_scale)
    if not save_mp4(out / "source_pose_frame.mp4", tiled, fps=GIF_FPS, scale=gif_scale):
        (out / "source_pose_frame.mp4").unlink(missing_ok=True)
