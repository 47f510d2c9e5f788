"""``posevae data poses``: the pose images of one motion clip, a pose source for ``posevae transfer``.

The demo renderer (:mod:`posevae.data.demo.dataset`) plays one DeepMimic clip (:mod:`.motion`) on its own,
filmed by the same camera operator and drawn the same way as the demo dataset, so a model trained on the
demo data can be driven by motion it never saw. pybullet ships 15 humanoid clips; the demo dataset plays the
11 of :data:`demo_motion.CLIPS <posevae.data.demo.motion.CLIPS>` and leaves out the four that are played
on the floor (crawl, roll, getup_facedown, getup_faceup: :func:`unseen_clips`), so those are the clips no
model trained on the demo data has seen. The default is ``getup_faceup``: it ends standing, where the
demo data lives. A clip of the training set (e.g. ``dance_a`` with another ``seed`` and ``speed``) gives
new combinations of seen motion instead.

A looping clip plays on from a seeded random clip time (a walk walks on); a clip that plays once is
repeated, cross-faded into its own start, until ``n_frames`` are made. Same arguments, same bytes.

Layout (``posevae transfer --poses DIR`` reads ``DIR/*.png``; sub-folders and other files are ignored)::

    DIR/{k}.png          the pose image of frame k = 0..n_frames-1 (OpenPose-style, as the dataset's labels)
    DIR/frames/{k}.png   the demo humanoid playing those poses, for reference (frames/0.png is a first frame)
    DIR/keypoints.npy    float32 (n_frames, J, 2) pixel (x, y) of the skeleton's joints
    DIR/poses.json       the parameters; written last, so its presence marks a finished folder

The folder is rendered under a hidden sibling name and moved into place at the end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from posevae.data.demo import dataset as demo
from posevae.data.demo import motion as demo_motion
from posevae.errors import UserError
from posevae.files import atomic_folder

POSES_FORMAT = "posevae-demo-poses"
MARKER = "poses.json"
DEFAULT_CLIP = "getup_faceup"
DEFAULT_FRAMES = 300  # 10 s at demo_motion.FPS


def available_clips() -> list[str]:
    """Names of the humanoid clips pybullet ships (``humanoid3d_<name>.txt``), sorted."""
    prefix = "humanoid3d_"
    files = demo_motion.motions_dir().glob(f"{prefix}*.txt")
    return sorted(p.name[len(prefix) : -len(".txt")] for p in files)


def unseen_clips() -> list[str]:
    """The clips the demo dataset never plays (every video of it is mixed from ``demo_motion.CLIPS`` only)."""
    return [c for c in available_clips() if c not in demo_motion.CLIPS]


def clip_rows(
    clip: str, n_frames: int, *, seed: int = 0, speed: float = 1.0
) -> tuple[np.ndarray, list[demo_motion.Segment], float]:
    """(pose rows (n_frames, POSE_DIM), the segments played, the camera's azimuth offset) of ``clip``.

    Segments follow :func:`demo_motion.plan_segments`' rules for one clip: a looping clip is one segment
    from a random clip time; a clip that plays once is played whole, again and again, each repeat
    cross-faded over 10-20 frames. The start heading and the camera offset are drawn as
    :func:`demo_motion.make_video` and :mod:`posevae.data.demo.dataset` draw them.
    """
    rng = np.random.default_rng([seed, 7])
    motion = demo_motion.load_clip(clip)
    lo, hi = demo_motion.BLEND_RANGE
    segments: list[demo_motion.Segment] = []
    if motion.loop:
        start = float(rng.uniform(0.0, motion.duration))
        segments.append(demo_motion.Segment(clip, speed, start, 0, n_frames, 0))
    else:
        frame = 0
        while frame < n_frames:
            blend_out = int(rng.integers(lo, hi + 1))
            n = max(math.ceil(motion.duration * demo_motion.FPS / speed) - blend_out // 2, 2 * hi + 2)
            segments.append(demo_motion.Segment(clip, speed, 0.0, frame, n, blend_out))
            frame += n
    start_yaw = -math.pi / 2 + float(rng.uniform(-0.7, 0.7))  # facing the camera, give or take 40 degrees
    azimuth_offset = float(rng.uniform(-0.35, 0.35))
    poses = demo_motion.synthesize(segments, n_frames, start_yaw=start_yaw)
    return poses.rows(), segments, azimuth_offset


def _validate(n_frames: int, height: int, width: int, seed: int, speed: float) -> None:
    for name, value in (("frames", n_frames), ("height", height), ("width", width), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"posevae data poses: --{name} must be an integer, got {value!r}.")
    lows = {"frames": (n_frames, 2), "height": (height, 16), "width": (width, 16), "seed": (seed, 0)}
    for name, (value, low) in lows.items():
        if value < low:
            raise UserError(f"posevae data poses: --{name} must be at least {low}, got {value}.")
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and 0.1 <= speed <= 10):
        raise UserError(f"posevae data poses: --speed must be a number from 0.1 to 10, got {speed!r}.")


def _check_clip(clip: str) -> None:
    names = available_clips()
    if clip not in names:
        unseen = unseen_clips()
        raise UserError(
            f"Unknown clip {clip!r}: choose one of {', '.join(names)} "
            f"(never in the demo training data: {', '.join(unseen) or 'none'})."
        )


def read_poses_marker(root: str | Path) -> dict | None:
    """The parameters of the finished poses folder ``root`` (its ``poses.json``), or None if there is none."""
    try:
        with open(Path(root) / MARKER) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == POSES_FORMAT else None


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another --out for the pose images.")
    if out.is_dir() and any(out.iterdir()) and read_poses_marker(out) is None:
        raise UserError(
            f"{out} exists, is not empty and is not a folder written by `posevae data poses` (no {MARKER}); "
            "refusing to overwrite it. Choose another --out, or remove the folder first."
        )


def render_clip_poses(
    out: str | Path,
    *,
    clip: str = DEFAULT_CLIP,
    n_frames: int = DEFAULT_FRAMES,
    height: int = 64,
    width: int = 128,
    seed: int = 0,
    speed: float = 1.0,
    progress: bool = True,
) -> Path:
    """Render the pose images (and reference frames) of ``clip`` into ``out``; returns its absolute path.

    See the module docstring for the layout. ``out`` may be missing, an empty folder, or an earlier poses
    folder (replaced); anything else is refused with :class:`UserError`, as is an unknown ``clip`` (the
    message lists the valid ones). Rendered in this process: a few hundred frames take seconds.
    """
    from tqdm.auto import tqdm

    _validate(n_frames, height, width, seed, speed)
    out = Path(out).expanduser().absolute()
    _check_target(out)
    demo._check_assets()
    _check_clip(clip)
    rows, segments, azimuth_offset = clip_rows(clip, n_frames, seed=seed, speed=float(speed))
    video = demo._Video(
        "poses",
        n_frames,
        [[f"frames/{k}.png"] for k in range(n_frames)],
        [f"{k}.png" for k in range(n_frames)],
        "keypoints.npy",
        rows=rows,
        segments=segments,
        azimuth_offset=azimuth_offset,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(out) as tmp:
        (tmp / "frames").mkdir()
        fk = [demo._work_fk(rows[a:b]) for a, b in demo._chunks(n_frames)]
        tasks = demo._plan_render(video, fk, tmp, width, height, hide_person=False)
        with tqdm(total=n_frames, desc=f"rendering {clip}", unit="frame", disable=not progress) as bar:
            for task in tasks:
                bar.update(demo._work_render(task))
        marker = {
            "format": POSES_FORMAT,
            "version": 1,
            "clip": clip,
            "seen_in_demo_training": clip in demo_motion.CLIPS,
            "frames": n_frames,
            "height": height,
            "width": width,
            "seed": int(seed),
            "speed": float(speed),
            "fps": demo_motion.FPS,
            "segments": [s.as_dict() for s in segments],
            "source": "DeepMimic motion capture clips shipped with pybullet (pybullet_data/data/motions), "
            "rendered with pybullet's ER_TINY_RENDERER by posevae's demo renderer",
        }
        with open(tmp / MARKER, "w") as f:
            json.dump(marker, f, indent=1)
        _check_target(out)
    return out


__all__ = [
    "DEFAULT_CLIP",
    "available_clips",
    "clip_rows",
    "read_poses_marker",
    "render_clip_poses",
    "unseen_clips",
]
