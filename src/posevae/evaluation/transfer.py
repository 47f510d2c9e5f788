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
  pose | generated frame.

Every image is converted to RGB and resized to the checkpoint's ``frame_H x frame_W`` with PIL bilinear,
the lab reader's rule. Every problem with the inputs is a :class:`~posevae.errors.UserError` raised before
``out`` is created, so bad input leaves no output folder behind.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageSequence
from tqdm.auto import tqdm

from posevae.data.lab import decode_image, decode_images, list_pngs, to_rgb_array, warn_converted
from posevae.device import resolve_device
from posevae.errors import UserError
from posevae.evaluation.predict import Z_MODES, model_from_checkpoint, prepare_out
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
from posevae.model.rollout import generate, to_unit_float
from posevae.model.template_ckpt import open_checkpoint

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
FOLDER_HINT = "a folder of pose PNGs named by frame number (0.png, 1.png ...; `posevae data poses` makes one)"
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


# ------------------------------------------------------------------------------------------------- inputs


def read_first_frame(path: str | Path, frame_H: int, frame_W: int) -> torch.Tensor:
    """The first frame: any image PIL opens, as RGB, resized to frame_H x frame_W -> (3, H, W) uint8."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not an image" if path.is_dir() else "does not exist"
        raise UserError(f"First frame {path} {what}: pass --first-frame IMAGE (PNG, JPEG, ...), the frame "
                        "the generated video starts from.")
    try:
        arr, _, _ = decode_image(path, frame_H, frame_W)
    except UserError as err:  # the lab reader's message speaks of PNGs and frame/label partners
        cause = err.__context__
        detail = (f"{cause.__class__.__name__}: {str(cause).replace(f' {str(path)!r}', '')}"
                  if cause is not None else str(err))
        raise UserError(f"Cannot read the first frame {path} ({detail}): it is corrupt or not an image; "
                        "re-export it or pass another --first-frame (PNG, JPEG, ...).") from None
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _read_pose_folder(
    folder: Path, frame_H: int, frame_W: int, limit: int | None, progress: bool
) -> tuple[np.ndarray, int]:
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if e.is_file() and not e.name.startswith(".")]
        if not any(n.lower().endswith(".png") for n in names):
            found = f" (only {len(names)} other file(s), e.g. {sorted(names)[0]})" if names else ""
            raise UserError(f"The pose folder {folder} holds no PNG images{found}: put the pose images there "
                            "as PNGs named by frame number (0.png, 1.png, ...), or pass a GIF or an MP4 as "
                            "--poses.")
        files = list_pngs(folder, "pose images", folder)  # numeric order; other files are ignored
    except OSError as err:
        raise UserError(f"Cannot list the pose folder {folder} ({err.strerror or err}): pass a folder you "
                        "can read.") from None
    chosen = files[:limit] if limit is not None else files
    arr, converted = decode_images([f.path for f in chosen], frame_H, frame_W, desc="decoding poses",
                                   progress=progress, fix="Re-export it, or delete it to skip that pose.")
    warn_converted(converted, len(chosen), str(folder))
    return arr, len(files)


def _read_gif(path: Path, frame_H: int, frame_W: int, limit: int | None) -> tuple[np.ndarray, int]:
    frames = []
    try:
        with Image.open(path) as im:
            if im.format != "GIF":
                raise ValueError(f"a {im.format} image, not a GIF")
            total = int(getattr(im, "n_frames", 1))
            for k, frame in enumerate(ImageSequence.Iterator(im)):
                if limit is not None and k >= limit:
                    break
                frames.append(to_rgb_array(frame, frame_H, frame_W).transpose(2, 0, 1))
    except _IMAGE_ERRORS as err:
        detail = str(err).replace(f" '{path}'", "")
        raise UserError(f"Cannot read the pose GIF {path} ({err.__class__.__name__}: {detail}): it is "
                        "corrupt or not a GIF; re-export it, or pass a folder of pose PNGs as --poses."
                        ) from None
    return np.stack(frames), total


def _read_video(
    path: Path, frame_H: int, frame_W: int, limit: int | None, progress: bool
) -> tuple[np.ndarray, int]:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError(f"Reading the pose video {path} needs imageio-ffmpeg: `pip install imageio-ffmpeg` "
                        f"(or posevae[mp4]), or pass {FOLDER_HINT} or a GIF as --poses.") from None
    frames = []
    more = False  # whether the video has frames beyond ``limit`` (not decoded)
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        with tqdm(desc="decoding pose video", unit="frame", disable=not progress, leave=False) as bar:
            for raw in reader:
                if limit is not None and len(frames) >= limit:
                    more = True
                    break
                image = Image.fromarray(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
                frames.append(to_rgb_array(image, frame_H, frame_W).transpose(2, 0, 1))
                bar.update()
    except (OSError, RuntimeError, ValueError, StopIteration, KeyError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise UserError(f"Cannot read the pose video {path} ({detail[:300]}): it is corrupt or not a video "
                        f"ffmpeg reads; re-export it, or pass {FOLDER_HINT} or a GIF as --poses.") from None
    finally:
        reader.close()
    if not frames:
        raise UserError(f"The pose video {path} has no frames: re-export it, or pass {FOLDER_HINT} or a "
                        "GIF as --poses.")
    return np.stack(frames), len(frames) + more  # with ``more``: at least that many, enough for the checks


def read_poses(
    poses: str | Path, frame_H: int, frame_W: int, *, limit: int | None = None, progress: bool = False
) -> tuple[torch.Tensor, int, str]:
    """The pose images of ``poses`` (a folder, a GIF or a video; see the module docstring).

    Returns ((n, 3, H, W) uint8 with n = min(limit, available), how many poses the source has (for a
    video read with ``limit``: more than ``limit`` when it has more, without decoding the rest), the kind
    of source: "folder", "gif" or "video").
    """
    path = Path(poses)
    if path.is_dir():
        arr, total = _read_pose_folder(path, frame_H, frame_W, limit, progress)
        return torch.from_numpy(arr), total, "folder"
    if not path.exists():
        raise UserError(f"--poses {path} does not exist: pass {FOLDER_HINT}, a GIF or an MP4.")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        arr, total = _read_gif(path, frame_H, frame_W, limit)
        return torch.from_numpy(arr), total, "gif"
    if suffix in VIDEO_SUFFIXES:
        arr, total = _read_video(path, frame_H, frame_W, limit, progress)
        return torch.from_numpy(arr), total, "video"
    raise UserError(f"--poses {path} is not a folder, a GIF or a video ({', '.join(VIDEO_SUFFIXES)}): pass "
                    f"{FOLDER_HINT}, a GIF or an MP4.")


def _pose_source(
    poses: str | Path, first_frame: str | Path, H: int, W: int, limit: int | None, from_video: bool | None,
    normalise: bool, progress: bool
) -> tuple[torch.Tensor, int, str, Any]:
    """(labels (n, 3, H, W) uint8, poses available, kind, a person video's :class:`DrivenPoses` or None)."""
    from posevae.data.video import drive

    if from_video is None:
        from_video = drive.is_person_video(Path(poses))
    if not from_video:
        return (*read_poses(poses, H, W, limit=limit, progress=progress), None)
    driven = drive.poses_from_video(poses, first_frame, H, W, normalise=normalise, limit=limit,
                                    progress=progress)
    labels = torch.from_numpy(np.ascontiguousarray(driven.labels.transpose(0, 3, 1, 2)))
    return labels, driven.info["frames"], "person video", driven


# ------------------------------------------------------------------------------------------------ transfer


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
) -> dict[str, Any]:
    """Drive checkpoint ``ckpt`` from ``first_frame`` with the pose sequence ``poses``; write under ``out``.

    N poses (or the first ``num_frames``) give N frames: frame 0 is ``first_frame`` resized to the model's
    size, bit for bit; frame k >= 1 is predicted from frame k-1 and pose k with z from the prior, its noise
    scaled by ``noise_scale`` (None: the checkpoint's ``sample.noise_scale``; ``z_mode`` "mean": the prior's
    mean), drawn from one ``torch.Generator`` seeded ``seed``: the same seed gives the same frames on the
    same device, and the first ``num_frames`` frames of a longer run.
    ``ckpt`` is a checkpoint file, a run folder (its ``checkpoints/last.safetensors``) or a course-template
    ``.ckpt`` (:mod:`posevae.model.template_ckpt`), as for ``posevae test``. ``poses_from_video`` and ``normalise``:
    see the module docstring. Returns the summary (also written to ``out/summary.json``).
    """
    if z_mode not in Z_MODES:
        raise UserError(f"--z_mode must be one of {', '.join(Z_MODES)}, got {z_mode!r}.")
    if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, int)
                                   or num_frames < 2):
        raise UserError(f"--num_frames must be an integer >= 2 (the first frame and at least one generated "
                        f"frame), got {num_frames!r}.")
    checkpoint = open_checkpoint(ckpt)  # a .safetensors, a run folder, or a course-template .ckpt
    cfg = checkpoint.config
    noise = cfg.sample.noise_scale if noise_scale is None else float(noise_scale)
    if not (math.isfinite(noise) and noise >= 0):
        raise UserError(f"--noise_scale must be a finite number >= 0, got {noise_scale}.")
    H, W = cfg.model.frame_H, cfg.model.frame_W

    first = read_first_frame(first_frame, H, W)  # (3, H, W) uint8
    labels, available, kind, driven = _pose_source(poses, first_frame, H, W, num_frames, poses_from_video,
                                                   normalise, progress)  # labels (N, 3, H, W)
    if available < 2:
        raise UserError(f"--poses {poses} holds {available} pose image(s); a transfer needs at least 2 (pose "
                        "0 belongs to the first frame, frames 1.. follow poses 1..): add pose images.")
    if num_frames is not None and available < num_frames:
        raise UserError(f"--num_frames {num_frames} asks for more frames than the {available} poses in "
                        f"{poses}: lower --num_frames to at most {available} or add pose images.")
    dev = resolve_device(device)
    model = model_from_checkpoint(checkpoint, ckpt, dev)
    out = prepare_out(Path(out))  # after every input check, so bad input leaves no output folder behind

    gen = torch.Generator(device=dev).manual_seed(seed)
    with tqdm(total=labels.shape[0] - 1, desc="transfer", unit="frame", disable=not progress) as bar:
        frames = generate(model, to_unit_float(first[None], dev), to_unit_float(labels[None], dev),
                          noise_scale=noise, z_mode=z_mode, generator=gen,
                          on_step=lambda t, out: bar.update())[0]  # (N, 3, H, W) in [0, 1]
    pred = to_uint8(frames).cpu()
    pred[0] = first  # the given frame, bit for bit

    scale = gif_scale(H)
    save_frames_png(pred, out / "frames")
    save_gif(out / "transfer.gif", pred, fps=GIF_FPS, scale=scale)
    save_gif(out / "pose_and_frame.gif", side_by_side(labels, pred), fps=GIF_FPS, scale=scale)
    wrote_mp4 = save_mp4(out / "transfer.mp4", pred, fps=GIF_FPS, scale=scale)
    if not wrote_mp4:  # an MP4 of an earlier transfer into this folder would mislead
        (out / "transfer.mp4").unlink(missing_ok=True)
    if driven is not None:
        source = torch.from_numpy(np.ascontiguousarray(driven.source[: len(pred)].transpose(0, 3, 1, 2)))
        _write_source_pose_frame(out, tile([source, labels, pred]), scale)

    summary: dict[str, Any] = {
        "checkpoint": str(Path(ckpt).resolve()),
        "first_frame": str(Path(first_frame).resolve()),
        "poses": str(Path(poses).resolve()),
        "poses_kind": kind,
        "frames": int(pred.shape[0]),
        "frame_size": [H, W],
        "noise_scale": noise,
        "z_mode": z_mode,
        "seed": seed,
        "device": str(dev),
        "outputs": {
            "frames": "frames/",
            "gif": "transfer.gif",
            "mp4": "transfer.mp4" if wrote_mp4 else None,
            "pose_and_frame_gif": "pose_and_frame.gif",
        },
    }
    if driven is not None:
        summary["pose_extraction"] = driven.info
        summary["outputs"]["source_pose_frame_gif"] = "source_pose_frame.gif"
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write_source_pose_frame(out: Path, tiled: torch.Tensor, gif_scale: int) -> None:
    """source video | pose | generated frame, as a GIF and (with imageio-ffmpeg) an MP4."""
    save_gif(out / "source_pose_frame.gif", tiled, fps=GIF_FPS, scale=gif_scale)
    if not save_mp4(out / "source_pose_frame.mp4", tiled, fps=GIF_FPS, scale=gif_scale):
        (out / "source_pose_frame.mp4").unlink(missing_ok=True)
