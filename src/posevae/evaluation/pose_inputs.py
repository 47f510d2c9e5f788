"""The inputs of a transfer: the first frame, and the pose images from a folder, a GIF, a video of drawn
poses,
or a video of a person (:mod:`posevae.evaluation.transfer` lists the rules)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageSequence
from tqdm.auto import tqdm

from posevae.config import SkeletonName
from posevae.data.lab import decode_image, decode_images, list_pngs, to_rgb_array, warn_converted
from posevae.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")


FOLDER_HINT = "a folder of pose PNGs named by frame number (0.png, 1.png ...; `posevae data poses` makes one)"


_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


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
    frames: list[np.ndarray] = []
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
    frames: list[np.ndarray] = []
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


@dataclass
class PoseSource:
    """The pose images that drive a transfer, and where they came from."""

    labels: torch.Tensor  # (n, 3, H, W) uint8, n = min(limit, available)
    # poses the source has (for a video read with a limit: more than the limit when it has more)
    available: int
    kind: str  # "folder", "gif", "video" or "person video"
    # a person video's posevae.data.video.drive.DrivenPoses (source frames, extraction info)
    driven: Any = None


def read_pose_source(
    poses: str | Path, first_frame: str | Path, H: int, W: int, limit: int | None, from_video: bool | None,
    normalise: bool, progress: bool, skeleton: SkeletonName = "demo"
) -> PoseSource:
    """The poses of ``poses``: pose images as they are, or a person video's poses extracted with MediaPipe,
    normalised to the person of ``first_frame`` and drawn as ``skeleton`` (``from_video`` None: decided by
    the first frame)."""
    from posevae.data.video import drive

    if from_video is None:
        from_video = drive.is_person_video(Path(poses))
    if not from_video:
        return PoseSource(*read_poses(poses, H, W, limit=limit, progress=progress))
    driven = drive.poses_from_video(poses, first_frame, H, W, normalise=normalise, limit=limit,
                                    progress=progress, skeleton=skeleton)
    labels = torch.from_numpy(np.ascontiguousarray(driven.labels.transpose(0, 3, 1, 2)))
    return PoseSource(labels, driven.info["frames"], "person video", driven)


def too_few_poses(what: str, available: int, num_frames: int, *, place: str | Path | None = None,
                  limit: int | None = None) -> str:
    """The message of ``posevae test`` and ``posevae transfer`` when ``what`` (in ``place``) has fewer poses
    than ``--num_frames`` asks for frames (one frame per pose); ``limit``: the most --num_frames can be
    (default ``available``)."""
    where = "" if place is None else f" in {place}"
    return (f"{what} has {available} poses{where}, but --num_frames asks for {num_frames}: lower "
            f"--num_frames to at most {available if limit is None else limit} or add pose images.")


def check_pose_count(source: PoseSource, poses: str | Path, num_frames: int | None) -> None:
    """UserError when the source has fewer than 2 poses, or fewer than ``num_frames``."""
    if source.available < 2:
        raise UserError(f"--poses {poses} holds {source.available} pose image(s); a transfer needs at least "
                        "2 (pose 0 belongs to the first frame, frames 1.. follow poses 1..): add pose "
                        "images.")
    if num_frames is not None and source.available < num_frames:
        raise UserError(too_few_poses("The pose source", source.available, num_frames, place=poses))
